"""The comparison report of `meshproof bench compare`: console tables (one per metric), comparison.md and
comparison.json."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from meshproof.bench.compare import Comparison, Row, Verdict
from meshproof.reporting.bench import fmt, fmt_interval

COMPARISON_MD = "comparison.md"
COMPARISON_HTML = "comparison.html"
COMPARISON_JSON = "comparison.json"
COMPARISON_SCHEMA = "meshproof.io/benchmark-comparison"
COMPARISON_VERSION = 1


def _cells(row: Row) -> list[str]:
    d = row.diff
    if d is None:
        return [row.cell.label(), "-", "-", "-", "-", "-", "-", "-", f"{row.verdict.value}: {row.reason}"]
    digits = 3 if d.unit == "ms" else 1
    return [
        row.cell.label(),
        fmt(d.baseline, digits),
        fmt(d.current, digits),
        f"{d.diff:+.{digits}f}",
        fmt_interval(d.diff_low, d.diff_high, digits),
        f"{d.rel_pct:+.1f}%",
        fmt_interval(d.rel_low_pct, d.rel_high_pct, 1),
        "n/a" if d.p_value is None else f"{d.p_value:.3f}",
        f"{row.verdict.value}: {row.reason.removeprefix(row.verdict.value + ': ')}"
        + "".join(f" [warning: {w}]" for w in d.warnings),
    ]


HEADERS = ["cell", "baseline", "current", "diff", "interval", "diff %", "interval %", "p (MW)", "verdict"]


def _unit(metric: str, rows: list[Row]) -> str:
    units = {r.diff.unit for r in rows if r.diff is not None}
    return units.pop() if len(units) == 1 else ""


def console_tables(comparison: Comparison) -> str:
    """Plain-text tables, one per metric, aligned for a terminal."""
    out: list[str] = []
    for metric, rows in comparison.by_metric().items():
        title = "all metrics" if metric == "*" else metric
        unit = _unit(metric, rows)
        out.append(f"== {title}{f' ({unit})' if unit else ''}")
        table = [HEADERS, *(_cells(r) for r in rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
        for line in table:
            out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        out.append("")
    out.append(summary_line(comparison))
    return "\n".join(out)


def _names(rows: list[Row]) -> str:
    names = ", ".join(f"{r.cell.label()} {r.metric}" if r.metric != "*" else r.cell.label() for r in rows[:5])
    return names + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")


def summary_line(comparison: Comparison) -> str:
    """The overall verdict in one line, with what decided it and the exit code."""
    verdict = comparison.verdict
    counts = ", ".join(f"{n} {v.value}" for v in Verdict if (n := len(comparison.with_verdict(v))))
    head = f"{verdict.value.upper()} (exit {comparison.exit_code})"
    if verdict is Verdict.NO_CHANGE:
        return f"{head}: {counts}"
    if verdict is Verdict.NOT_JUDGED:
        return f"{head}: nothing could be judged ({counts}); see each row's reason"
    return f"{head}: {_names(comparison.with_verdict(verdict))} ({counts})"


def markdown(comparison: Comparison) -> str:
    t = comparison.thresholds
    lines = [
        "# meshproof benchmark comparison",
        "",
        f"- Baseline: `{comparison.baseline}`",
        f"- Current: `{comparison.current}`",
        f"- Rule: a metric regressed (improved) when it is worse (better) by more than {t.threshold_pct:g}%"
        + (f" and, for latency, by at least {t.min_delta_ms:g} ms" if t.min_delta_ms else "")
        + f", and the {100 * t.confidence:g}% interval of the difference (t interval over repetitions) "
        f"excludes 0; one repetition on a side, or fewer than {t.min_tail_samples} requests beyond a "
        "percentile, is not judged; invalid current runs are 'could not sustain the load'.",
        f"- Result: **{summary_line(comparison)}**",
        "",
    ]
    for metric, rows in comparison.by_metric().items():
        unit = _unit(metric, rows)
        lines.append(f"## {'all metrics' if metric == '*' else metric}{f' ({unit})' if unit else ''}")
        lines.append("")
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + " --- |" * len(HEADERS))
        for row in rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
        lines.append("")
    if comparison.only_in_baseline or comparison.only_in_current:
        lines.append("## Cells present on one side only (not compared)")
        lines.append("")
        lines += [f"- baseline only: {c.label()}" for c in comparison.only_in_baseline]
        lines += [f"- current only: {c.label()}" for c in comparison.only_in_current]
        lines.append("")
    return "\n".join(lines)


def html(comparison: Comparison) -> str:
    """comparison.html: the same tables as comparison.md, and every setting of the rule, self-contained."""
    t = comparison.thresholds
    settings = [
        ("baseline", comparison.baseline),
        ("current", comparison.current),
        ("relative threshold", f"{t.threshold_pct:g}%"),
        ("minimum latency effect", f"{t.min_delta_ms:g} ms"),
        ("confidence", f"{100 * t.confidence:g}% (Student t over repetitions)"),
        ("minimum requests beyond a percentile", str(t.min_tail_samples)),
        ("metrics judged", ", ".join(t.metrics)),
    ]
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        "<title>meshproof benchmark comparison</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}"
        "th,td{border:1px solid #ccc;padding:3px 7px}th{background:#f0f0f0}"
        ".regressed,.could{color:#b00020}.improved{color:#1b7a2f}</style></head><body>",
        "<h1>meshproof benchmark comparison</h1>",
        f"<p><strong>{escape(summary_line(comparison))}</strong></p>",
        "<h2>Settings</h2><table>",
        *(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in settings),
        "</table>",
    ]
    for metric, rows in comparison.by_metric().items():
        unit = _unit(metric, rows)
        out.append(
            f"<h2>{escape('all metrics' if metric == '*' else metric)}{f' ({unit})' if unit else ''}</h2>"
        )
        out.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in HEADERS) + "</tr>")
        for row in rows:
            css = row.verdict.value.split()[0]
            cells = "".join(f"<td>{escape(c)}</td>" for c in _cells(row))
            out.append(f'<tr class="{css}">{cells}</tr>')
        out.append("</table>")
    one_side = [f"baseline only: {c.label()}" for c in comparison.only_in_baseline]
    one_side += [f"current only: {c.label()}" for c in comparison.only_in_current]
    if one_side:
        out.append("<h2>Cells present on one side only (not compared)</h2><ul>")
        out += [f"<li>{escape(line)}</li>" for line in one_side]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def to_json(comparison: Comparison) -> dict[str, object]:
    rows = []
    for row in comparison.rows:
        entry: dict[str, object] = {
            "cell": row.cell.model_dump(),
            "metric": row.metric,
            "verdict": row.verdict.value,
            "reason": row.reason,
        }
        if row.diff is not None:
            d = row.diff
            entry.update(
                unit=d.unit,
                baseline=d.baseline,
                current=d.current,
                diff=d.diff,
                interval=[d.diff_low, d.diff_high],
                rel_pct=d.rel_pct,
                rel_interval_pct=[d.rel_low_pct, d.rel_high_pct],
                baseline_reps=d.baseline_reps,
                current_reps=d.current_reps,
                mann_whitney_p=d.p_value,
                paired=d.paired,
                baseline_values=list(d.baseline_values),
                current_values=list(d.current_values),
                note=d.note,
                warnings=list(d.warnings),
            )
        rows.append(entry)
    return {
        "schema": COMPARISON_SCHEMA,
        "version": COMPARISON_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "baseline": comparison.baseline,
        "current": comparison.current,
        "thresholds": comparison.thresholds.model_dump(mode="json"),
        "verdict": comparison.verdict.value,
        "exit_code": comparison.exit_code,
        "regression": bool(comparison.regressions),
        "rows": rows,
        "only_in_baseline": [c.model_dump() for c in comparison.only_in_baseline],
        "only_in_current": [c.model_dump() for c in comparison.only_in_current],
    }


def write_comparison(comparison: Comparison, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md_path = directory / COMPARISON_MD
    json_path = directory / COMPARISON_JSON
    md_path.write_text(markdown(comparison), encoding="utf-8")
    (directory / COMPARISON_HTML).write_text(html(comparison), encoding="utf-8")
    json_path.write_text(
        json.dumps(_finite(to_json(comparison)), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return md_path, json_path


def _finite(value: object) -> object:
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
