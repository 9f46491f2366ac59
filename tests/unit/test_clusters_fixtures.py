"""The `clusters`/`mesh` fixtures provision once per run and tear down once, also under pytest-xdist.

A real pytest run (in a subprocess, with and without `-n 2`) loads the real plugins (fixtures.run,
fixtures.clusters, fixtures.mesh); only the provider, the plan executor and the cluster client are fakes
that log what they are asked to do. What this proves: one provisioning of the clusters and one mesh install
for the whole run however many workers ask; teardown runs once, in the controller, after the workers; a
reused mesh is not torn down. What it cannot prove: anything about real clusters (the install suite does
that on one).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import os, time
from pathlib import Path

pytest_plugins = ["fixtures.run", "fixtures.clusters", "fixtures.mesh"]

import meshproof.commands.doctor as doctor
doctor.preflight = lambda cfg: []  # no kind/docker here; the preflight is not under test

import fixtures.clusters as fc
from meshproof.mesh.lifecycle import LazyClusters

LOG = Path(os.environ["MESHPROOF_FIXTURE_LOG"])


def log(line):
    with LOG.open("a") as f:
        f.write(f"{line} pid={os.getpid()}\\n")


class FakeCluster:
    def get(self, *args, **kwargs):
        return None

    def list(self, *args, **kwargs):  # no control plane's marks: a cluster without Istio
        return []

    def server_version(self):
        return "v1.33.4"

    def close(self):
        pass


class FakeProvider:
    name = "fake"
    owns_clusters = True

    def plan_steps(self, spec):
        return []

    def prerequisites(self, spec):
        return []

    def before_provision(self, cfg, spec):
        log("before_provision")

    def check_clusters(self, spec, clusters):
        log("check_clusters")
        return {"meshproof": "fake"}


def fake_apply(plan, clusters, *, stages, **kwargs):
    log("apply " + ",".join(stages))
    time.sleep(0.5)  # let the other worker arrive while provisioning is in progress
    return [i for i, _ in plan.steps_in(*stages)]


def fake_undo(plan, clusters, *, stages, only=None, **kwargs):
    log("undo " + ",".join(stages))
    return []


real_make = fc.make_provisioner


def make(config, cfg, plan, basetemp):
    prov = real_make(config, cfg, plan, basetemp)
    prov.apply, prov.undo, prov.provider = fake_apply, fake_undo, FakeProvider()
    prov.clusters = LazyClusters(plan.spec.clusters, lambda spec: FakeCluster())
    return prov


fc.make_provisioner = make
"""

TESTS = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_uses_the_mesh(n, mesh, cluster):
    assert mesh.istio_namespace == "istio-system"
"""


def run_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> list[tuple[str, int]]:
    log = pytester.path / "calls.log"
    monkeypatch.setenv("MESHPROOF_FIXTURE_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for name in [n for n in os.environ if n.startswith("MESHPROOF_") and n != "MESHPROOF_FIXTURE_LOG"]:
        monkeypatch.delenv(name)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a=TESTS, test_b=TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--basetemp", str(pytester.path / "tmp"), *args
    )
    result.assert_outcomes(passed=8)
    entries = []
    for line in log.read_text().splitlines():
        what, pid = line.rsplit(" pid=", 1)
        entries.append((what, int(pid)))
    return entries


def test_single_process_provisions_once_and_tears_down_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    entries = run_suite(pytester, monkeypatch)
    assert [what for what, _ in entries] == [
        "before_provision",
        "apply cluster,platform",
        "check_clusters",
        "apply mesh",
        # kind clusters this run created go away whole: no separate mesh uninstall
        "undo cluster,platform",
    ]


def test_xdist_workers_share_one_provisioning_and_the_controller_tears_down(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    entries = run_suite(pytester, monkeypatch, "-n", "2")
    whats = [what for what, _ in entries]
    assert whats.count("apply cluster,platform") == 1
    assert whats.count("apply mesh") == 1
    assert whats[-1] == "undo cluster,platform" and whats.count("undo cluster,platform") == 1
    provisioning_pid = dict(entries)["apply mesh"]
    teardown_pid = entries[-1][1]
    assert teardown_pid != provisioning_pid  # the controller, not the worker that provisioned
    # the worker that provisioned told the controller's report what the cluster is
    (report,) = (pytester.path / "reports").glob("*/conformance-report.yaml")
    platform = yaml.safe_load(report.read_text())["platform"]
    assert platform["clusters"] == {"meshproof": {"kubernetes": "v1.33.4", "notes": "fake"}}
