"""Fixtures of the cluster benchmark: the plan, the arms deployed in identical namespaces, and the
session that collects every run and always writes the report (even when a test fails or the run aborts).

Wiring only; the mechanics are meshproof.bench.{plan,cluster,runner} and meshproof.reporting.bench.
Choose the load profile with MESHPROOF_BENCH_PROFILE (a name in load/profiles/ or a path; default
"quick"); compare against a stored result with MESHPROOF_BENCH_BASELINE (a results dir or benchmark.json).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshproof.bench.cluster import (
    ArmDeployment,
    ArmSettings,
    ClusterExecutor,
    deploy_arm,
    remove_arm,
    wait_for_path,
)
from meshproof.bench.plan import BenchPlan, PlanError, load_plan
from meshproof.bench.runner import Measure, PlanOutcome, run_plan
from meshproof.bench.session import ARMS_BY_MODE, PROFILE_ENV, BenchSession, environment_facts
from meshproof.bench.settings import BenchSettingsError, bench_settings
from meshproof.config import RunConfig
from meshproof.wait import Timeouts
from meshproof.workloads import DEFAULT_RUN_AS_USER


def pytest_collection_finish(session: pytest.Session) -> None:
    """Bad benchmark settings stop the run before anything is provisioned: one line each, once."""
    here = Path(__file__).parent
    if any(Path(str(item.path)).is_relative_to(here) for item in session.items):
        try:
            bench_settings()
        except BenchSettingsError as exc:
            raise pytest.UsageError(*(f"meshproof: {problem}" for problem in exc.problems)) from None


@pytest.fixture(scope="session")
def bench_plan(request: pytest.FixtureRequest) -> BenchPlan:
    workers = int(getattr(request.config, "workerinput", {}).get("workercount", 1))
    if workers > 1:
        pytest.fail("the benchmark must run in one process (drop -n): parallel load runs measure each other")
    try:
        return load_plan(os.environ.get(PROFILE_ENV, "quick"))
    except PlanError as exc:
        raise pytest.UsageError(f"meshproof: {PROFILE_ENV}: {exc}") from None


@pytest.fixture(scope="session")
def bench_arms(bench_plan: BenchPlan, run_config: RunConfig) -> list[str]:
    """The plan's arms this run's mesh can serve (the others are reported unsupported by their tests)."""
    return [arm for arm in bench_plan.arms if arm in ARMS_BY_MODE[run_config.mode]]


@pytest.fixture(scope="session")
def bench_deployments(
    request: pytest.FixtureRequest,
    cluster: Any,
    mesh: Any,
    run_config: RunConfig,
    bench_plan: BenchPlan,
    bench_arms: list[str],
    timeouts: Timeouts,
) -> Iterator[tuple[ArmSettings, dict[str, ArmDeployment]]]:
    """Every arm deployed (identical namespaces, manifests/bench/), removed at the end of the session."""
    settings = ArmSettings(
        run_id=run_config.run_id,
        sizing=bench_plan.sizing,
        placement=bench_plan.placement,
        revision=getattr(mesh, "revision", None),
        # OpenShift assigns UIDs through its SCCs; a fixed runAsUser would be refused there
        run_as_user=None if run_config.provider == "openshift" else DEFAULT_RUN_AS_USER,
    )
    deployments: dict[str, ArmDeployment] = {}
    try:
        for arm in bench_arms:
            deployments[arm] = deploy_arm(cluster, arm, settings, timeout=timeouts.rollout)
        yield settings, deployments
    finally:
        failed = request.session.testsfailed > 0
        if not (failed and run_config.keep_on_failure):
            for arm in bench_arms:
                remove_arm(cluster, run_config.run_id, arm, timeout=timeouts.rollout)


@pytest.fixture(scope="session")
def bench_session(
    results_dir: Path, bench_plan: BenchPlan, run_config: RunConfig, mesh: Any, cluster: Any
) -> Iterator[BenchSession]:
    session = BenchSession(
        directory=results_dir / "benchmark",
        plan=bench_plan,
        environment=environment_facts(run_config, mesh, cluster, bench_plan),
    )
    try:
        yield session
    finally:
        session.write()  # always: an aborted benchmark still leaves what it measured and why it stopped


@pytest.fixture(scope="session")
def verified_arms(
    cluster: Any,
    bench_deployments: tuple[ArmSettings, dict[str, ArmDeployment]],
    bench_session: BenchSession,
    timeouts: Timeouts,
) -> dict[str, ArmDeployment]:
    """The deployed arms whose traffic is on the path the arm claims; measuring any other is pointless."""
    _, deployments = bench_deployments
    for arm, dep in deployments.items():
        bench_session.path_verdicts[arm] = wait_for_path(cluster, dep, timeout=timeouts.traffic)
    return {arm: dep for arm, dep in deployments.items() if bench_session.path_verdicts[arm]}


@pytest.fixture
def measure(
    cluster: Any,
    mesh: Any,
    bench_session: BenchSession,
    bench_deployments: tuple[ArmSettings, dict[str, ArmDeployment]],
    verified_arms: dict[str, ArmDeployment],
    timeouts: Timeouts,
) -> Measure:
    """Runs a plan (the profile, or a part of it) on the verified arms; every run lands in the report."""
    settings, _ = bench_deployments

    def run(plan: BenchPlan) -> PlanOutcome:
        executor = ClusterExecutor(
            cluster=cluster,
            plan=plan,
            settings=settings,
            deployments=dict(verified_arms),
            ztunnel_namespace=getattr(mesh, "ztunnel_namespace", None),
            rollout_timeout=timeouts.rollout,
            raw_dir=bench_session.directory / "raw",
            notes=bench_session.notes,
        )
        outcome = run_plan(plan, executor, arms=list(verified_arms))
        bench_session.record(outcome)
        return outcome

    return run
