"""Data-plane cost of the mesh: no-mesh vs sidecar vs ambient (ztunnel) vs ambient + waypoint.

The method is perf-anchors §7 (profile load/profiles/standard.yaml; quick.yaml and smoke.yaml are
shorter): identical namespaces per arm, the path checked before measuring, fortio at fixed QPS for
latency (connection sweep, QPS sweep, one max-throughput run), distributed Locust for throughput,
warm-up discarded, repetitions with a random arm order at every load point, proxy CPU and memory
sampled during each run. The report (benchmark.json/.md/.html) lands in <results dir>/benchmark/.

A benchmark measures; it does not judge the mesh fast or slow. These tests fail when the measurement
itself is broken (a tool failed, the no-mesh baseline could not sustain the load) or, when a baseline
is given (MESHPROOF_BENCH_BASELINE), when a metric regressed against it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from meshproof.bench.cluster import ArmDeployment, ArmSettings
from meshproof.bench.compare import Thresholds, Verdict, compare_results
from meshproof.bench.model import BASELINE_ARM, load_results
from meshproof.bench.plan import BenchPlan, FortioSettings, LocustSettings
from meshproof.bench.runner import Measure, PlanOutcome
from meshproof.bench.scale import ScaleCountsError, aggregate, scale_counts
from meshproof.bench.scale_cluster import ScaleTargets, measure_scale
from meshproof.bench.session import BASELINE_ENV, SCALE_PODS_ENV, THRESHOLD_ENV, BenchSession
from meshproof.checks.verdict import require
from meshproof.config import RunConfig
from meshproof.mesh.info import MeshInfo
from meshproof.reporting.bench_compare import summary_line, write_comparison
from meshproof.wait import Timeouts

pytestmark = [pytest.mark.benchmark, pytest.mark.slow]

ARMS = ("no-mesh", "sidecar", "ambient", "waypoint")


def _baseline_gaps(outcome: PlanOutcome) -> list[str]:
    """Load points where the no-mesh arm never produced a valid run: nothing can be compared there."""
    cells: dict[str, bool] = {}
    for run in outcome.runs:
        if run.arm == BASELINE_ARM:
            key = run.cell().point()
            cells[key] = cells.get(key, False) or run.valid
    return sorted(point for point, ok in cells.items() if not ok)


@pytest.mark.parametrize("arm", ARMS)
def test_arm_traffic_takes_the_arm_path(
    arm: str, bench_arms: list[str], run_config: RunConfig, bench_session: BenchSession, verified_arms: dict
) -> None:
    """Before measuring: sidecars, ambient redirection, waypoint binding and the client certificate header
    are where the arm says and absent where it says not (no-mesh is the negative control)."""
    if arm not in bench_arms:
        pytest.skip(f"unsupported: the {arm} arm needs an ambient install; this run is {run_config.mode}")
    require(bench_session.path_verdicts[arm])


def test_fortio_latency_sweeps(
    bench_plan: BenchPlan, verified_arms: dict[str, ArmDeployment], measure: Measure
) -> None:
    if not bench_plan.fortio.enabled or not bench_plan.fortio_points():
        pytest.skip(f"profile {bench_plan.name} has no fortio load points")
    assert BASELINE_ARM in verified_arms, "the no-mesh arm failed its path check: nothing to compare against"
    outcome = measure(bench_plan.model_copy(update={"locust": LocustSettings(enabled=False)}))
    assert not outcome.failures, f"fortio failed: {outcome.failures[0]}"
    gaps = _baseline_gaps(outcome)
    assert not gaps, (
        f"no valid no-mesh run at {', '.join(gaps)}: the cluster cannot sustain that load; "
        "use a lighter profile"
    )


def test_locust_throughput(
    bench_plan: BenchPlan, verified_arms: dict[str, ArmDeployment], measure: Measure
) -> None:
    if not bench_plan.locust.enabled:
        pytest.skip(f"profile {bench_plan.name} has Locust disabled")
    assert BASELINE_ARM in verified_arms, "the no-mesh arm failed its path check: nothing to compare against"
    outcome = measure(bench_plan.model_copy(update={"fortio": FortioSettings(enabled=False)}))
    assert not outcome.failures, f"Locust failed: {outcome.failures[0]}"
    assert not _baseline_gaps(outcome), "no valid no-mesh Locust run: see the report's invalid runs"


def test_mesh_cost_at_scale(
    bench_plan: BenchPlan,
    bench_deployments: tuple[ArmSettings, dict[str, ArmDeployment]],
    cluster: Any,
    mesh: MeshInfo,
    run_config: RunConfig,
    bench_session: BenchSession,
    timeouts: Timeouts,
) -> None:
    """N idle enrolled pods per arm: data-plane and istiod cost as N grows (the `scale` profile)."""
    if not bench_plan.scale.enabled:
        pytest.skip(f"profile {bench_plan.name} has no scale section (MESHPROOF_BENCH_PROFILE=scale)")
    try:
        counts = scale_counts(bench_plan.scale.pods, run_config.provider, os.environ.get(SCALE_PODS_ENV))
    except ScaleCountsError as exc:
        raise pytest.UsageError(f"meshproof: {SCALE_PODS_ENV}: {exc}") from None
    settings, deployments = bench_deployments
    arms = [arm for arm in deployments if arm != BASELINE_ARM]
    assert arms, "no mesh arm deployed: nothing to scale"
    samples, windows, notes = measure_scale(
        cluster,
        arms,
        settings,
        counts,
        targets=ScaleTargets(
            istiod_namespace=mesh.istio_namespace,
            ztunnel_namespace=mesh.ztunnel_namespace,
        ),
        settle_s=bench_plan.scale.settle_s,
        samples=bench_plan.scale.samples,
        interval_s=bench_plan.scale.interval_s,
        timeout_s=timeouts.rollout,
    )
    bench_session.scale_samples.extend(samples)
    bench_session.scale_pushes.extend(windows)
    bench_session.notes.extend(notes)
    points = {(p.arm, p.pods): p for p in aggregate(samples, windows)}
    # evidence from the cluster: every arm at every N had its data-plane containers read
    missing = [f"{arm} N={n}" for arm in arms for n in counts if (arm, n) not in points]
    empty = [f"{p.arm} N={p.pods}" for p in points.values() if p.proxies == 0]
    assert not missing and not empty, f"no data-plane metrics for {', '.join(missing + empty)}: {notes[:3]}"


def test_no_regression_against_baseline(bench_session: BenchSession) -> None:
    baseline_path = os.environ.get(BASELINE_ENV)
    if not baseline_path:
        pytest.skip(f"no baseline: set {BASELINE_ENV} to a results dir or benchmark.json to compare")
    if not bench_session.runs:
        pytest.skip("nothing was measured in this session")
    baseline = load_results(Path(baseline_path))
    thresholds = Thresholds(threshold_pct=float(os.environ.get(THRESHOLD_ENV, "10")))
    comparison = compare_results(
        baseline, bench_session.results(), thresholds, baseline_name=baseline_path, current_name="this run"
    )
    write_comparison(comparison, bench_session.directory)
    # regressed, could not sustain the load, or nothing judged: each fails, with the verdict's reason
    assert comparison.verdict in (Verdict.NO_CHANGE, Verdict.IMPROVED), summary_line(comparison)
