"""Benchmark plots as PNG bytes (matplotlib, Agg backend: no display needed).

Each function returns None when the results hold nothing to draw (e.g. no QPS sweep in a local run),
so a report never embeds an empty chart.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from meshproof.bench.analysis import CellSummary, MeshCost, ResourceCost
from meshproof.bench.model import ARM_NAMES, REPORTED_PERCENTILES, CellKey, RunRecord, percentile_key

ARM_COLOURS = {"no-mesh": "#4d4d4d", "sidecar": "#d95f02", "ambient": "#1b9e77", "waypoint": "#7570b3"}
_EXTRA_COLOURS = ("#1f78b4", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#17becf", "#8c564b", "#bcbd22")
HEADLINE_PERCENTILES = ("p50", "p90", "p99")
# Published added latency over no mesh, ms (perf-anchors §0): Istio 1.20 sidecar pair and Istio 1.22
# ambient L4 (two ztunnels), 1 kB at 1000 req/s on bare metal. No p50 was published.
PUBLISHED_OVERHEAD_MS: dict[str, tuple[str, dict[str, float]]] = {
    "sidecar": ("Istio 1.20 sidecar", {"p90": 0.228, "p99": 0.298}),
    "ambient": ("Istio 1.22 ambient L4", {"p90": 0.17, "p99": 0.20}),
}


_ASSIGNED: dict[str, str] = {}


def colour(arm: str) -> str:
    """The arm's colour: fixed for the four mesh arms; other names (local A/B arms) take the next free
    colour of a palette in the order first drawn, so one report's plots agree and arms do not share one."""
    if arm in ARM_COLOURS:
        return ARM_COLOURS[arm]
    if arm not in _ASSIGNED:
        _ASSIGNED[arm] = _EXTRA_COLOURS[len(_ASSIGNED) % len(_EXTRA_COLOURS)]
    return _ASSIGNED[arm]


def _plain(value: float, _pos: object = None) -> str:
    """Tick labels people read: 0.1, 0.25, 2, 40 (not 10^-1 or 2.5e-01)."""
    if value <= 0:
        return "0"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def readable_log_axis(ax: Axes, axis: str = "y") -> None:
    """Log scale with plain-number ticks and no minor labels; call it after drawing. Tick density
    follows the span, so labels never run into each other: 1-1.5-2-3-5-7 within about a decade,
    1-2-5 up to three decades, powers of ten beyond."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades <= 1.2 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(_plain))
    target.set_minor_formatter(NullFormatter())


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _arm_rank(arm: str) -> tuple[int, str]:
    return (ARM_NAMES.index(arm), arm) if arm in ARM_NAMES else (len(ARM_NAMES), arm)


def reference_points(summaries: Sequence[CellSummary]) -> list[CellSummary]:
    """Per tool, the load point measured in the most arms (ties: the highest fixed QPS), one cell per arm."""
    chosen: list[CellSummary] = []
    for tool in sorted({s.cell.tool for s in summaries}):
        mine = [s for s in summaries if s.cell.tool == tool and s.percentiles_ms]
        if not mine:
            continue
        points: dict[tuple[float | None, int, int], list[CellSummary]] = {}
        for s in mine:
            points.setdefault((s.cell.requested_qps, s.cell.connections, s.cell.payload_bytes), []).append(s)
        best = max(points.items(), key=lambda kv: (len(kv[1]), kv[0][0] is not None, kv[0][0] or 0, kv[0][1]))
        chosen.extend(sorted(best[1], key=lambda s: _arm_rank(s.cell.arm)))
    return chosen


def latency_by_arm(summaries: Sequence[CellSummary]) -> bytes | None:
    """Grouped bars: p50/p90/p99/p99.9 per arm at the reference point; whiskers = spread over repetitions."""
    cells = reference_points(summaries)
    if not cells:
        return None
    keys = [percentile_key(q) for q in REPORTED_PERCENTILES]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(cells)
    for i, summary in enumerate(cells):
        xs = [k + i * width for k in range(len(keys))]
        values = [summary.percentiles_ms.get(k, float("nan")) for k in keys]
        low = [v - summary.spread_ms.get(k, (v, v))[0] for k, v in zip(keys, values, strict=True)]
        high = [summary.spread_ms.get(k, (v, v))[1] - v for k, v in zip(keys, values, strict=True)]
        ax.bar(
            xs,
            values,
            width,
            yerr=[low, high],
            capsize=3,
            label=f"{summary.cell.arm} ({summary.cell.point()})",
            color=colour(summary.cell.arm),
        )
    ax.set_xticks([k + width * (len(cells) - 1) / 2 for k in range(len(keys))], keys)
    readable_log_axis(ax, "y")
    lowest = min((v for s in cells for v in s.percentiles_ms.values() if v > 0), default=1.0)
    ax.set_ylim(bottom=lowest / 2)  # bars on a log axis start somewhere: half the smallest value
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency percentiles per arm (median over repetitions; whiskers: min-max)")
    # below the axes: a legend inside would cover the bars
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(cells), 3))
    ax.grid(axis="y", which="both", alpha=0.3)
    return _png(fig)


def _sweep(summaries: Sequence[CellSummary], scenario: str) -> list[CellSummary]:
    return [s for s in summaries if scenario in s.scenarios and s.percentiles_ms and s.cell.tool == "fortio"]


def latency_vs(summaries: Sequence[CellSummary], scenario: str) -> bytes | None:
    """p50 and p99 against QPS ("qps-sweep") or connections ("connection-sweep"), one line per arm."""
    cells = _sweep(summaries, scenario)
    by_qps = scenario == "qps-sweep"
    axis_values = {(s.cell.requested_qps if by_qps else s.cell.connections) for s in cells}
    if len(axis_values) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for arm in sorted({s.cell.arm for s in cells}, key=_arm_rank):
        mine = sorted(
            (s for s in cells if s.cell.arm == arm),
            key=lambda s: (s.cell.requested_qps if by_qps else s.cell.connections) or 0,
        )
        xs = [(s.cell.requested_qps if by_qps else s.cell.connections) for s in mine]
        for ax, key in zip(axes, ("p50", "p99"), strict=True):
            ax.plot(
                xs,
                [s.percentiles_ms.get(key, float("nan")) for s in mine],
                marker="o",
                label=arm,
                color=colour(arm),
            )
    for ax, key in zip(axes, ("p50", "p99"), strict=True):
        ax.set_xlabel("requested QPS" if by_qps else "connections")
        ax.set_ylabel(f"{key} latency (ms)")
        readable_log_axis(ax, "x")
        ax.set_xticks(
            sorted(v for v in axis_values if v), [_plain(v) for v in sorted(v for v in axis_values if v)]
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Latency vs QPS" if by_qps else "Latency vs connections")
    return _png(fig)


def resources_per_krps(costs: Sequence[ResourceCost]) -> bytes | None:
    """mCPU per 1000 req/s and working-set MiB per proxy component and arm."""
    rows = [c for c in costs if c.cpu_per_1000_rps is not None]
    if not rows:
        return None
    labels = [f"{c.arm}\n{c.component}" for c in rows]
    colours = [colour(c.arm) for c in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, len(rows) * 1.1), 4.2))
    axes[0].bar(labels, [c.cpu_per_1000_rps or 0.0 for c in rows], color=colours)
    axes[0].set_ylabel("mCPU per 1000 req/s")
    axes[1].bar(labels, [c.memory_mib for c in rows], color=colours)
    axes[1].set_ylabel("working set (MiB)")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7, rotation=45)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Proxy CPU and memory (median over runs)")
    return _png(fig)


def overhead_headline(costs: Sequence[MeshCost], reference: str) -> bytes | None:
    """The headline: each arm's added latency over the reference arm (no mesh) at p50/p90/p99 with its
    95% interval, at the load point measured in the most arms, and the published overheads as dashed
    reference lines. One panel per percentile, each with its own scale: a wide p99 interval must not
    flatten a clear p50 difference. A hollow marker has no interval (fewer than two repetitions)."""
    chosen = _headline_costs(costs)
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(HEADLINE_PERCENTILES), figsize=(11, 4.2))
    fig.subplots_adjust(wspace=0.35)
    published_labels: set[str] = set()
    for ax, key in zip(axes, HEADLINE_PERCENTILES, strict=True):
        for i, cost in enumerate(chosen):
            arm = cost.cell.arm
            d = next((d for d in cost.diffs if d.metric == key), None)
            if d is None:
                continue
            label = f"{arm} - {reference}" if key == HEADLINE_PERCENTILES[0] else None
            if d.has_interval:
                yerr = [[d.diff - d.diff_low], [d.diff_high - d.diff]]  # type: ignore[operator]
                ax.errorbar(i, d.diff, yerr=yerr, fmt="o", color=colour(arm), capsize=4, label=label)
            else:
                ax.plot(i, d.diff, "o", mfc="none", color=colour(arm), label=label)
            published = PUBLISHED_OVERHEAD_MS.get(arm)
            if published and key in published[1]:
                name = f"published: {published[0]}"
                ax.hlines(
                    published[1][key],
                    i - 0.35,
                    i + 0.35,
                    colors=colour(arm),
                    linestyles="dashed",
                    label=name if name not in published_labels else "_nolegend_",
                )
                published_labels.add(name)
        ax.axhline(0, color="#888888", linewidth=0.8)
        ax.set_xticks(range(len(chosen)), [c.cell.arm for c in chosen], rotation=20, fontsize=8)
        ax.set_xlim(-0.6, len(chosen) - 0.4)
        ax.set_title(key)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"added latency over {reference} (ms)")
    fig.suptitle(
        f"Overhead over {reference} at {chosen[0].cell.point()} (mean over repetitions, 95% interval)"
    )
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    labels = [lb for ax in axes for lb in ax.get_legend_handles_labels()[1]]
    fig.legend(handles, labels, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    return _png(fig)


def _headline_costs(costs: Sequence[MeshCost]) -> list[MeshCost]:
    """The costs at the fortio (else any tool's) load point measured in the most arms."""
    if not costs:
        return []
    by_point: dict[tuple[str, float | None, int, int], list[MeshCost]] = {}
    for cost in costs:
        c = cost.cell
        by_point.setdefault((c.tool, c.requested_qps, c.connections, c.payload_bytes), []).append(cost)
    best = max(
        by_point.items(),
        key=lambda kv: (kv[0][0] == "fortio", len(kv[1]), kv[0][1] is not None, kv[0][1] or 0, kv[0][2]),
    )
    return sorted(best[1], key=lambda m: _arm_rank(m.cell.arm))


def latency_cdf(runs_by_cell: dict[CellKey, list[RunRecord]]) -> bytes | None:
    """Latency distribution per arm at one load point: every valid repetition as its own line (log x),
    the CDF on the left and the tail (1 - CDF, log y) on the right."""
    cells = {c: [r for r in runs if r.valid and r.histogram.count] for c, runs in runs_by_cell.items()}
    cells = {c: runs for c, runs in cells.items() if runs}
    if not cells:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    fig.subplots_adjust(wspace=0.3)
    for cell in sorted(cells, key=lambda c: _arm_rank(c.arm)):
        for i, run in enumerate(sorted(cells[cell], key=lambda r: r.repetition)):
            _, ends, counts = run.histogram.arrays()
            cdf = np.cumsum(counts) / counts.sum()
            label = f"{cell.arm} ({len(cells[cell])} repetitions)" if i == 0 else None
            left.step(ends, cdf, where="post", color=colour(cell.arm), alpha=0.7, linewidth=1, label=label)
            tail = np.clip(1 - cdf, 1e-6, None)
            right.step(ends, tail, where="post", color=colour(cell.arm), alpha=0.7, linewidth=1)
    for ax in (left, right):
        readable_log_axis(ax, "x")
        ax.set_xlabel("latency (ms, log scale)")
        ax.grid(which="major", alpha=0.3)
    left.set_ylabel("share of requests at or below")
    right.set_yscale("log")
    right.set_ylabel("share of requests above (tail)")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:g}%"))
    left.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Latency distribution per arm at {next(iter(cells)).point()}, every repetition")
    return _png(fig)


def throughput_vs_connections(summaries: Sequence[CellSummary]) -> bytes | None:
    """Achieved throughput against connections per arm, for one tool: its max-throughput cells when they
    span two connection counts or more, else the fixed-rate cells of its connection sweep."""
    cells: list[CellSummary] = []
    for pick in (
        lambda s: s.cell.requested_qps is None,
        lambda s: "connection-sweep" in s.scenarios,
    ):
        for tool in ("fortio", "locust"):
            mine = [s for s in summaries if s.throughput is not None and s.cell.tool == tool and pick(s)]
            if len({s.cell.connections for s in mine}) >= 2:
                cells = mine
                break
        if cells:
            break
    if not cells:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm in sorted({s.cell.arm for s in cells}, key=_arm_rank):
        mine = sorted((s for s in cells if s.cell.arm == arm), key=lambda s: s.cell.connections)
        ax.plot(
            [s.cell.connections for s in mine],
            [s.throughput or 0.0 for s in mine],
            marker="o",
            color=colour(arm),
            label=arm,
        )
    connections = sorted({s.cell.connections for s in cells})
    readable_log_axis(ax, "x")
    ax.set_xticks(connections, [str(c) for c in connections])
    ax.set_xlabel("connections")
    ax.set_ylabel("achieved throughput (req/s)")
    qps = cells[0].cell.requested_qps
    what = "as fast as possible" if qps is None else f"at {qps:g} req/s requested"
    ax.set_title(f"Throughput vs connections, {cells[0].cell.tool} {what} (median over repetitions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
