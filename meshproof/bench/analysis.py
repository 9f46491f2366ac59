"""Per-cell summaries of a results file and each arm's difference to the no-mesh arm.

Only valid runs enter a statistic; a cell without valid runs is reported with its runs' reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from meshproof.bench.model import (
    BASELINE_ARM,
    REPORTED_PERCENTILES,
    BenchmarkResults,
    CellKey,
    ResourceUsage,
    RunRecord,
    percentile_key,
)
from meshproof.bench.stats import DEFAULT_MIN_TAIL_SAMPLES, MetricDiff, compare_groups

# Which proxies a request crosses per arm (perf-anchors §5: report per request path as well as per proxy).
PATH_COMPONENTS: dict[str, tuple[str, ...]] = {
    "no-mesh": (),
    "sidecar": ("sidecar-client", "sidecar-server"),
    "ambient": ("ztunnel-client-node", "ztunnel-server-node"),
    "waypoint": ("ztunnel-client-node", "ztunnel-server-node", "waypoint"),
}


@dataclass(frozen=True)
class CellSummary:
    cell: CellKey
    scenarios: tuple[str, ...]
    valid_runs: int
    invalid_runs: int
    percentiles_ms: dict[str, float]  # median over valid repetitions
    spread_ms: dict[str, tuple[float, float]]  # (min, max) over valid repetitions
    throughput: float | None
    requests: int
    invalid_reasons: list[str] = field(default_factory=list)


def summarize(results: BenchmarkResults) -> list[CellSummary]:
    summaries: list[CellSummary] = []
    for cell, runs in results.cells().items():
        valid = [r for r in runs if r.valid]
        per_q = {percentile_key(q): [r.histogram.percentile(q) for r in valid] for q in REPORTED_PERCENTILES}
        summaries.append(
            CellSummary(
                cell=cell,
                scenarios=tuple(sorted({s for r in runs for s in r.scenarios})),
                valid_runs=len(valid),
                invalid_runs=len(runs) - len(valid),
                percentiles_ms={k: float(np.median(v)) for k, v in per_q.items() if v},
                spread_ms={k: (float(min(v)), float(max(v))) for k, v in per_q.items() if v},
                throughput=float(np.median([r.actual_qps for r in valid])) if valid else None,
                requests=sum(r.requests for r in valid),
                invalid_reasons=[
                    f"{r.run_id}: {reason}" for r in runs if not r.valid for reason in r.invalid_reasons
                ],
            )
        )
    return summaries


def reference_arm(results: BenchmarkResults) -> str:
    """The arm every other is compared with: no-mesh, or a local A/B run's first arm."""
    named = results.plan.get("reference_arm")
    return named if isinstance(named, str) and named else BASELINE_ARM


@dataclass(frozen=True)
class MeshCost:
    """An arm's cell against the same cell of the no-mesh arm."""

    cell: CellKey
    diffs: list[MetricDiff]


def mesh_costs(
    results: BenchmarkResults, *, min_tail_samples: int = DEFAULT_MIN_TAIL_SAMPLES
) -> list[MeshCost]:
    """Each arm against no-mesh at the same point. The arms of one session were measured interleaved
    (every repetition runs every arm back to back), so repetitions are paired."""
    cells = results.cells()
    reference = reference_arm(results)
    costs: list[MeshCost] = []
    for cell, runs in cells.items():
        if cell.arm == reference:
            continue
        baseline = [r for r in cells.get(cell.with_arm(reference), []) if r.valid]
        current = [r for r in runs if r.valid]
        if baseline and current:
            costs.append(
                MeshCost(
                    cell=cell,
                    diffs=compare_groups(baseline, current, min_tail_samples=min_tail_samples, paired=True),
                )
            )
    return costs


@dataclass(frozen=True)
class ResourceCost:
    arm: str
    component: str
    cpu_millicores: float
    memory_mib: float
    cpu_per_1000_rps: float | None
    runs: int


def resource_costs(results: BenchmarkResults) -> list[ResourceCost]:
    """Median over runs of each component's CPU (also per 1000 req/s of the run) and working set."""
    qps_by_run = {r.run_id: r.actual_qps for r in results.runs if r.valid}
    grouped: dict[tuple[str, str], list[ResourceUsage]] = {}
    for usage in results.resources:
        if usage.run_id in qps_by_run:
            grouped.setdefault((usage.arm, usage.component), []).append(usage)
    costs: list[ResourceCost] = []
    for (arm, component), usages in sorted(grouped.items()):
        per_k = [u.cpu_millicores / (qps_by_run[u.run_id] / 1000) for u in usages if qps_by_run[u.run_id] > 0]
        costs.append(
            ResourceCost(
                arm=arm,
                component=component,
                cpu_millicores=float(np.median([u.cpu_millicores for u in usages])),
                memory_mib=float(np.median([u.memory_working_set_mib for u in usages])),
                cpu_per_1000_rps=float(np.median(per_k)) if per_k else None,
                runs=len({u.run_id for u in usages}),
            )
        )
    return costs


def path_costs(costs: Sequence[ResourceCost]) -> dict[str, tuple[float | None, float]]:
    """Per arm: (mCPU per 1000 req/s, MiB) summed over the proxies on the request path."""
    by_arm: dict[str, tuple[float | None, float]] = {}
    for arm, components in PATH_COMPONENTS.items():
        parts = [c for c in costs if c.arm == arm and c.component in components]
        if not parts:
            continue
        cpu = [c.cpu_per_1000_rps for c in parts]
        total_cpu = None if any(v is None for v in cpu) else float(sum(v for v in cpu if v is not None))
        by_arm[arm] = (total_cpu, float(sum(c.memory_mib for c in parts)))
    return by_arm


def runs_in_order(results: BenchmarkResults) -> list[RunRecord]:
    return sorted(results.runs, key=lambda r: (r.repetition, r.order))
