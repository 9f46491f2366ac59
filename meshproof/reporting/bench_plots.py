"""Benchmark plots as PNG bytes (matplotlib, Agg backend: no display needed).

Each function returns None when the results hold nothing to draw (e.g. no QPS sweep in a local run),
so a report never embeds an empty chart.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from meshproof.bench.analysis import CellSummary, ResourceCost
from meshproof.bench.model import ARM_NAMES, REPORTED_PERCENTILES, percentile_key

ARM_COLOURS = {"no-mesh": "#4d4d4d", "sidecar": "#d95f02", "ambient": "#1b9e77", "waypoint": "#7570b3"}


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
            color=ARM_COLOURS.get(summary.cell.arm),
        )
    ax.set_xticks([k + width * (len(cells) - 1) / 2 for k in range(len(keys))], keys)
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles per arm (median over repetitions; whiskers: min-max)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
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
                color=ARM_COLOURS.get(arm),
            )
    for ax, key in zip(axes, ("p50", "p99"), strict=True):
        ax.set_xlabel("requested QPS" if by_qps else "connections")
        ax.set_ylabel(f"{key} latency (ms)")
        ax.set_xscale("log")
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
    colours = [ARM_COLOURS.get(c.arm, "#999999") for c in rows]
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
