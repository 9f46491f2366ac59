"""Once per run: clusters and mesh are provisioned by exactly one process, however many ask at once.

Real processes (fork) share a real directory and a real file lock, as pytest-xdist workers do; the provider
and the plan executor are fakes that count their calls in a file. What this proves: the work runs once and
every process gets its result; a failure is recorded and handed to later callers without re-running the
work; the Provisioner routes cluster and mesh provisioning through that guard. What it cannot prove: that
pytest-xdist lays out basetemps as `fixtures.clusters.shared_dir` assumes (each worker's inside the
controller's), or that the teardown hook runs in the controller process; those are checked on a real run.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from meshproof.clusters.once import ProvisionFailed, RunOnce
from meshproof.config import load_config
from meshproof.mesh.lifecycle import Provisioner
from meshproof.mesh.plan import build_plan
from meshproof.wait import Timeouts

WORKERS = 4


def _count(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def _ask_once(shared: str, counter: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.3)  # long enough that the other processes arrive while the work is in progress
        return {"executed": [0, 1, 2]}

    return RunOnce(Path(shared), "clusters", lock_timeout=30).ensure("fingerprint-1", work)


def test_concurrent_processes_run_the_work_once_and_share_its_result(tmp_path: Path):
    counter = tmp_path / "calls"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(_ask_once, [(str(tmp_path), str(counter))] * WORKERS)
    assert _count(counter) == 1
    assert results == [{"executed": [0, 1, 2]}] * WORKERS


def test_a_failure_is_recorded_and_not_retried(tmp_path: Path):
    once = RunOnce(tmp_path, "mesh", lock_timeout=5)
    calls: list[int] = []

    def broken() -> dict[str, Any]:
        calls.append(1)
        raise RuntimeError("helm: chart istiod not found\nsecond line")

    with pytest.raises(RuntimeError):
        once.ensure("fp", broken)
    with pytest.raises(ProvisionFailed, match=r"^helm: chart istiod not found \| second line$"):
        RunOnce(tmp_path, "mesh", lock_timeout=5).ensure("fp", broken)
    assert calls == [1]
    assert once.result() is None


def test_a_different_configuration_in_the_same_run_is_refused(tmp_path: Path):
    RunOnce(tmp_path, "mesh", lock_timeout=5).ensure("fp-a", lambda: {"installed": True})
    with pytest.raises(ProvisionFailed, match="different configuration"):
        RunOnce(tmp_path, "mesh", lock_timeout=5).ensure("fp-b", lambda: {"installed": True})


def test_a_waiter_gives_up_with_a_clear_message(tmp_path: Path):
    from filelock import FileLock

    once = RunOnce(tmp_path, "clusters", lock_timeout=0.2)
    with FileLock(str(once.lock_path)), pytest.raises(ProvisionFailed, match="raise --timeout-scale"):
        once.ensure("fp", lambda: {})


# --- the Provisioner through the guard, with a fake provider ---------------------------------------------


class FakeProvider:
    name = "fake"
    owns_clusters = True

    def __init__(self, counter: Path) -> None:
        self.counter = counter

    def plan_steps(self, spec: Any) -> list[Any]:
        return []

    def prerequisites(self, spec: Any) -> list[str]:
        return []

    def before_provision(self, cfg: Any, spec: Any) -> None:
        with open(self.counter, "a") as f:
            f.write("p")

    def check_clusters(self, spec: Any, clusters: Any) -> dict[str, str]:
        return {}


def _provision_in_process(shared: str, counter: str) -> dict[str, Any]:
    cfg = load_config({"provider": "kind", "installer": "helm", "mode": "ambient"}, env={})
    plan = build_plan(cfg)

    def fake_apply(plan: Any, clusters: Any, *, stages: Any, **_: Any) -> list[int]:
        with open(counter, "a") as f:
            f.write("a")
        time.sleep(0.2)
        return [i for i, _ in plan.steps_in(*stages)]

    prov = Provisioner(
        cfg=cfg,
        plan=plan,
        shared_dir=Path(shared),
        timeouts=Timeouts.scaled(0.1),
        cluster_factory=lambda spec: pytest.fail("no cluster object is needed by the fake apply"),
        apply=fake_apply,
    )
    prov.provider = FakeProvider(Path(counter))
    return prov.ensure_clusters()


def test_provisioner_provisions_clusters_once_across_processes(tmp_path: Path):
    counter = tmp_path / "calls"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(_provision_in_process, [(str(tmp_path), str(counter))] * WORKERS)
    assert counter.read_text() == "pa"  # one before_provision, one apply, in that order
    assert len({tuple(r["executed"]) for r in results}) == 1
    assert results[0]["executed"]  # the cluster and platform steps the plan has
