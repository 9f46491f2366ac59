"""Benchmark reports: `benchmark.md` and a self-contained `benchmark.html` (PNG plots embedded as base64)
next to the versioned `benchmark.json` they are built from. `meshproof bench report DIR` rebuilds them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from meshproof.bench.analysis import (
    CellSummary,
    MeshCost,
    ResourceCost,
    mesh_costs,
    path_costs,
    resource_costs,
    runs_in_order,
    summarize,
)
from meshproof.bench.model import REPORTED_PERCENTILES, BenchmarkResults, RunRecord, load_results, percentile_key
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
        "note": diff.note,
    }


def build_plots(summaries: Sequence[CellSummary], costs: Sequence[ResourceCost]) -> list[Plot]:
    candidates = [
        ("Latency percentiles per arm", "latency-by-arm.png", bench_plots.latency_by_arm(summaries)),
        ("Latency vs QPS", "latency-vs-qps.png", bench_plots.latency_vs(summaries, "qps-sweep")),
        ("Latency vs connections", "latency-vs-connections.png", bench_plots.latency_vs(summaries, "connection-sweep")),
        ("CPU and memory per 1000 req/s", "resources.png", bench_plots.resources_per_krps(costs)),
    ]
    return [Plot(title, name, png) for title, name, png in candidates if png]


def _context(results: BenchmarkResults, source: str) -> dict[str, object]:
    summaries = summarize(results)
    costs = resource_costs(results)
    mesh: list[MeshCost] = mesh_costs(results)
    plots = build_plots(summaries, costs)
    return {
        "results": results,
        "source": source,
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
    }


def _placement(run: RunRecord) -> str:
    p = run.placement
    if p.client_node is None and p.server_node is None:
        return p.policy
    return f"{p.policy}: {p.client_node} -> {p.server_node}"


_ENV = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_HTML_ENV = Environment(undefined=StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True)

MARKDOWN_TEMPLATE = """\
# meshproof benchmark report

- Source: `{{ source }}` (schema {{ results.schema_ }} v{{ results.version }}, meshproof {{ results.meshproof_version }})
- Created: {{ results.created_at.isoformat() }}; kind: {{ results.kind }}
- Runs: {{ results.runs | length }} ({{ invalid_runs | length }} invalid, kept out of every statistic)

## Environment

| key | value |
| --- | --- |
{% for key, value in results.environment.items() %}
| {{ key }} | {{ value }} |
{% endfor %}

## Latency and throughput per cell

Median over valid repetitions; latency in ms, throughput in req/s.

| arm | load point | scenarios | valid/total |{% for k in percentile_keys %} {{ k }} |{% endfor %} throughput |
| --- | --- | --- | --- |{% for k in percentile_keys %} ---: |{% endfor %} ---: |
{% for s in summaries %}
| {{ s.cell.arm }} | {{ s.cell.point() }} | {{ s.scenarios | join(", ") }} | {{ s.valid_runs }}/{{ s.valid_runs + s.invalid_runs }} |{% for k in percentile_keys %} {{ fmt(s.percentiles_ms.get(k)) }} |{% endfor %} {{ fmt(s.throughput, 1) }} |
{% endfor %}

{% if mesh_costs %}
## Difference to no-mesh

Arm minus no-mesh at the same load point. Interval: bootstrap 95% CI (repetitions and requests
resampled). p: Mann-Whitney U over repetitions (n/a below 3 per side).

{% for cell, rows in mesh_costs %}
### {{ cell.label() }}

| metric | no-mesh | {{ cell.arm }} | diff | interval | diff % | interval % | p | note |
| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | --- |
{% for r in rows %}
| {{ r.metric }} ({{ r.unit }}) | {{ r.baseline }} | {{ r.current }} | {{ r.diff }} | {{ r.interval }} | {{ r.rel }} | {{ r.rel_interval }} | {{ r.p_value }} | {{ r.note }} |
{% endfor %}

{% endfor %}
{% endif %}
{% if resource_costs %}
## Proxy CPU and memory

Per proxy, median over runs (working-set memory). Per request path: the proxies one request crosses.

| arm | component | mCPU | mCPU per 1000 req/s | working set MiB | runs |
| --- | --- | ---: | ---: | ---: | ---: |
{% for c in resource_costs %}
| {{ c.arm }} | {{ c.component }} | {{ fmt(c.cpu_millicores, 1) }} | {{ fmt(c.cpu_per_1000_rps, 1) }} | {{ fmt(c.memory_mib, 1) }} | {{ c.runs }} |
{% endfor %}

| arm | path mCPU per 1000 req/s | path MiB |
| --- | ---: | ---: |
{% for arm, (cpu, mem) in path_costs.items() %}
| {{ arm }} | {{ fmt(cpu, 1) }} | {{ fmt(mem, 1) }} |
{% endfor %}

{% endif %}
{% if invalid_runs %}
## Invalid runs

{% for r in invalid_runs %}
- `{{ r.run_id }}` ({{ r.cell().label() }}): {{ r.invalid_reasons | join("; ") }}
{% endfor %}

{% endif %}
## Runs in execution order

| run | rep | order | arm | load point | actual QPS | requests | errors | p50 | p99 | valid | placement |
| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |
{% for run in runs %}
{% set r = run_row(run) %}
| {{ r.run_id }} | {{ r.rep }} | {{ r.order }} | {{ r.arm }} | {{ r.point }} | {{ r.actual_qps }} | {{ r.requests }} | {{ r.errors }} | {{ r.p50 }} | {{ r.p99 }} | {{ r.valid }} | {{ r.placement }} |
{% endfor %}
{% if results.notes %}

## Notes

{% for n in results.notes %}
- {{ n }}
{% endfor %}
{% endif %}
{% if plots %}

## Plots

{% for p in plots %}
- {{ p.title }}: `plots/{{ p.filename }}` (embedded in benchmark.html)
{% endfor %}
{% endif %}
"""

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>meshproof benchmark report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; } td.num { text-align: right; }
th { background: #f0f0f0; } .invalid { color: #b00020; } img { max-width: 100%; }
</style></head><body>
<h1>meshproof benchmark report</h1>
<p>Source <code>{{ source }}</code> &middot; schema {{ results.schema_ }} v{{ results.version }} &middot;
meshproof {{ results.meshproof_version }} &middot; {{ results.created_at.isoformat() }} &middot; {{ results.kind }}
&middot; {{ results.runs | length }} runs ({{ invalid_runs | length }} invalid, excluded from statistics)</p>
{% for p in plots %}
<figure><img alt="{{ p.title }}" src="{{ p.data_uri }}"><figcaption>{{ p.title }}</figcaption></figure>
{% endfor %}
<h2>Latency and throughput per cell</h2>
<table><tr><th>arm</th><th>load point</th><th>scenarios</th><th>valid/total</th>
{% for k in percentile_keys %}<th>{{ k }} (ms)</th>{% endfor %}<th>throughput (req/s)</th></tr>
{% for s in summaries %}
<tr><td>{{ s.cell.arm }}</td><td>{{ s.cell.point() }}</td><td>{{ s.scenarios | join(", ") }}</td>
<td class="num">{{ s.valid_runs }}/{{ s.valid_runs + s.invalid_runs }}</td>
{% for k in percentile_keys %}<td class="num">{{ fmt(s.percentiles_ms.get(k)) }}</td>{% endfor %}
<td class="num">{{ fmt(s.throughput, 1) }}</td></tr>
{% endfor %}
</table>
{% if mesh_costs %}
<h2>Difference to no-mesh</h2>
<p>Bootstrap 95% interval (repetitions and requests resampled); p: Mann-Whitney U over repetitions.</p>
{% for cell, rows in mesh_costs %}
<h3>{{ cell.label() }}</h3>
<table><tr><th>metric</th><th>no-mesh</th><th>{{ cell.arm }}</th><th>diff</th><th>interval</th>
<th>diff %</th><th>interval %</th><th>p</th><th>note</th></tr>
{% for r in rows %}
<tr><td>{{ r.metric }} ({{ r.unit }})</td><td class="num">{{ r.baseline }}</td><td class="num">{{ r.current }}</td>
<td class="num">{{ r.diff }}</td><td>{{ r.interval }}</td><td class="num">{{ r.rel }}</td><td>{{ r.rel_interval }}</td>
<td class="num">{{ r.p_value }}</td><td>{{ r.note }}</td></tr>
{% endfor %}
</table>
{% endfor %}
{% endif %}
{% if resource_costs %}
<h2>Proxy CPU and memory</h2>
<table><tr><th>arm</th><th>component</th><th>mCPU</th><th>mCPU / 1000 req/s</th><th>working set MiB</th><th>runs</th></tr>
{% for c in resource_costs %}
<tr><td>{{ c.arm }}</td><td>{{ c.component }}</td><td class="num">{{ fmt(c.cpu_millicores, 1) }}</td>
<td class="num">{{ fmt(c.cpu_per_1000_rps, 1) }}</td><td class="num">{{ fmt(c.memory_mib, 1) }}</td>
<td class="num">{{ c.runs }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if invalid_runs %}
<h2 class="invalid">Invalid runs</h2><ul>
{% for r in invalid_runs %}<li><code>{{ r.run_id }}</code> ({{ r.cell().label() }}): {{ r.invalid_reasons | join("; ") }}</li>{% endfor %}
</ul>
{% endif %}
<h2>Environment</h2>
<table>{% for key, value in results.environment.items() %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
<h2>Runs in execution order</h2>
<table><tr><th>run</th><th>rep</th><th>order</th><th>arm</th><th>load point</th><th>actual QPS</th><th>requests</th>
<th>errors</th><th>p50</th><th>p99</th><th>valid</th><th>placement</th></tr>
{% for run in runs %}{% set r = run_row(run) %}
<tr{% if r.valid != "yes" %} class="invalid"{% endif %}><td>{{ r.run_id }}</td><td class="num">{{ r.rep }}</td>
<td class="num">{{ r.order }}</td><td>{{ r.arm }}</td><td>{{ r.point }}</td><td class="num">{{ r.actual_qps }}</td>
<td class="num">{{ r.requests }}</td><td class="num">{{ r.errors }}</td><td class="num">{{ r.p50 }}</td>
<td class="num">{{ r.p99 }}</td><td>{{ r.valid }}</td><td>{{ r.placement }}</td></tr>
{% endfor %}
</table>
{% if results.notes %}<h2>Notes</h2><ul>{% for n in results.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def render_markdown(results: BenchmarkResults, source: str = "benchmark.json") -> str:
    return _ENV.from_string(MARKDOWN_TEMPLATE).render(**_context(results, source))


def write_reports(results: BenchmarkResults, directory: Path) -> ReportPaths:
    """Write benchmark.json (if missing or stale), benchmark.md, benchmark.html and plots/*.png."""
    json_path = results.save(directory)
    context = _context(results, str(json_path.name))
    markdown = _ENV.from_string(MARKDOWN_TEMPLATE).render(**context)
    html = _HTML_ENV.from_string(HTML_TEMPLATE).render(**context)
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
