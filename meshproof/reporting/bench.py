"""Benchmark reports: `benchmark.md` and a self-contained `benchmark.html` (PNG plots embedded as base64)
next to the versioned `benchmark.json` they are built from. `meshproof bench report DIR` rebuilds them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from meshproof.bench import scale
from meshproof.bench.analysis import (
    CellSummary,
    MeshCost,
    ResourceCost,
    mesh_costs,
    path_costs,
    reference_arm,
    resource_costs,
    runs_in_order,
    summarize,
)
from meshproof.bench.model import (
    REPORTED_PERCENTILES,
    BenchmarkResults,
    RunRecord,
    load_results,
    percentile_key,
)
from meshproof.bench.stats import MetricDiff
from meshproof.reporting import bench_plots

MARKDOWN_FILE = "benchmark.md"
HTML_FILE = "benchmark.html"
PERCENTILE_KEYS = [percentile_key(q) for q in REPORTED_PERCENTILES]


@dataclass(frozen=True)
class Plot:
    title: str
    filename: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path
    html: Path
    plots: list[Path]


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_interval(low: float | None, high: float | None, digits: int = 3) -> str:
    if low is None or high is None:
        return "n/a"
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def fmt_diff(diff: MetricDiff) -> dict[str, str]:
    digits = 3 if diff.unit == "ms" else 1
    return {
        "metric": diff.metric,
        "unit": diff.unit,
        "baseline": fmt(diff.baseline, digits),
        "current": fmt(diff.current, digits),
        "diff": f"{diff.diff:+.{digits}f}",
        "interval": fmt_interval(diff.diff_low, diff.diff_high, digits),
        "rel": f"{diff.rel_pct:+.1f}%",
        "rel_interval": fmt_interval(diff.rel_low_pct, diff.rel_high_pct, 1),
        "p_value": "n/a" if diff.p_value is None else f"{diff.p_value:.3f}",
        "reps": f"{diff.baseline_reps}/{diff.current_reps}" + (" paired" if diff.paired else ""),
        "note": "; ".join(n for n in (diff.note, *diff.warnings) if n),
    }


def build_plots(
    results: BenchmarkResults,
    summaries: Sequence[CellSummary],
    costs: Sequence[ResourceCost],
    mesh: Sequence[MeshCost],
    scale_pts: Sequence[scale.ScalePoint] | None = None,
) -> list[Plot]:
    reference = reference_arm(results)
    cells = results.cells()
    points = bench_plots.reference_points(summaries)
    # the distribution at one load point: fortio's when there is one (latency is fortio's job)
    tool = (
        "fortio" if any(s.cell.tool == "fortio" for s in points) else next((s.cell.tool for s in points), "")
    )
    at_point = {s.cell: cells.get(s.cell, []) for s in points if s.cell.tool == tool}
    candidates = [
        (
            f"Mesh overhead over {reference} (headline)",
            "overhead.png",
            bench_plots.overhead_headline(mesh, reference),
        ),
        ("Latency distribution per arm", "latency-cdf.png", bench_plots.latency_cdf(at_point)),
        ("Latency percentiles per arm", "latency-by-arm.png", bench_plots.latency_by_arm(summaries)),
        ("Latency vs QPS", "latency-vs-qps.png", bench_plots.latency_vs(summaries, "qps-sweep")),
        (
            "Latency vs connections",
            "latency-vs-connections.png",
            bench_plots.latency_vs(summaries, "connection-sweep"),
        ),
        (
            "Throughput vs connections",
            "throughput-vs-connections.png",
            bench_plots.throughput_vs_connections(summaries),
        ),
        ("CPU and memory per 1000 req/s", "resources.png", bench_plots.resources_per_krps(costs)),
        (
            "Cost of the mesh vs N idle pods",
            "scale-cost.png",
            scale.cost_plot(list(scale_pts) if scale_pts is not None else scale_points(results)),
        ),
    ]
    return [Plot(title, name, png) for title, name, png in candidates if png]


def _context(results: BenchmarkResults, source: str) -> dict[str, object]:
    summaries = summarize(results)
    costs = resource_costs(results)
    mesh: list[MeshCost] = mesh_costs(results)
    scale_pts = scale_points(results)
    plots = build_plots(results, summaries, costs, mesh, scale_pts)
    return {
        "results": results,
        "source": source,
        "reference_arm": reference_arm(results),
        "scale_table": scale.markdown_table(scale_pts) if results.scale_samples else "",
        "scale_rows": [scale.table_row(p) for p in scale_pts],
        "scale_headers": scale.TABLE_HEADERS,
        "settings": flatten_settings(results.plan),
        "summaries": summaries,
        "percentile_keys": PERCENTILE_KEYS,
        "mesh_costs": [(m.cell, [fmt_diff(d) for d in m.diffs]) for m in mesh],
        "resource_costs": costs,
        "path_costs": path_costs(costs),
        "runs": runs_in_order(results),
        "invalid_runs": [r for r in results.runs if not r.valid],
        "plots": plots,
        "fmt": fmt,
        "run_row": _run_row,
    }


def scale_points(results: BenchmarkResults) -> list[scale.ScalePoint]:
    return scale.points_of(results.scale_samples, results.scale_pushes)


def _run_row(run: RunRecord) -> dict[str, str]:
    return {
        "run_id": run.run_id,
        "rep": str(run.repetition),
        "order": str(run.order),
        "arm": run.arm,
        "point": run.cell().point(),
        "actual_qps": fmt(run.actual_qps, 1),
        "requests": str(run.requests),
        "errors": str(run.errors),
        "p50": fmt(run.latency.percentiles_ms.get("p50")),
        "p99": fmt(run.latency.percentiles_ms.get("p99")),
        "valid": "yes" if run.valid else "NO",
        "placement": _placement(run),
        "req_per_cpu_s": fmt(run.requests_per_cpu_second, 0),
        "req_per_core": fmt(run.requests_per_loadgen_core, 0),
    }


def flatten_settings(plan: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    """Every setting of the run as (dotted key, value) rows, so the report carries all of them."""
    rows: list[tuple[str, str]] = []
    for key, value in plan.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(flatten_settings(value, f"{name}."))
        else:
            rows.append((name, "-" if value is None else str(value)))
    return rows


def _placement(run: RunRecord) -> str:
    p = run.placement
    if p.client_node is None and p.server_node is None:
        return p.policy
    return f"{p.policy}: {p.client_node} -> {p.server_node}"


# Templates live with the benchmark engine (meshproof/bench/templates/); the repository is the product.
TEMPLATES = Path(__file__).resolve().parents[1] / "bench" / "templates"
_ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_HTML_ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_markdown(results: BenchmarkResults, source: str = "benchmark.json") -> str:
    return _ENV.get_template("benchmark.md.j2").render(**_context(results, source))


def write_reports(results: BenchmarkResults, directory: Path) -> ReportPaths:
    """Write benchmark.json (if missing or stale), benchmark.md, benchmark.html and plots/*.png."""
    json_path = results.save(directory)
    context = _context(results, str(json_path.name))
    markdown = _ENV.get_template("benchmark.md.j2").render(**context)
    html = _HTML_ENV.get_template("benchmark.html.j2").render(**context)
    plot_dir = directory / "plots"
    plot_paths: list[Path] = []
    plots = context["plots"]
    assert isinstance(plots, list)
    if plots:
        plot_dir.mkdir(exist_ok=True)
    for plot in plots:
        path = plot_dir / plot.filename
        path.write_bytes(plot.png)
        plot_paths.append(path)
    md_path = directory / MARKDOWN_FILE
    html_path = directory / HTML_FILE
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(html, encoding="utf-8")
    return ReportPaths(json=json_path, markdown=md_path, html=html_path, plots=plot_paths)


def rebuild_reports(location: Path) -> ReportPaths:
    """`meshproof bench report DIR`: re-read benchmark.json and write the reports next to it."""
    results = load_results(location)
    directory = location if location.is_dir() else location.parent
    return write_reports(results, directory)
