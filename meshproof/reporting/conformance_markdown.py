"""The conformance report as Markdown, for people (the YAML is for machines)."""

from __future__ import annotations

from typing import Any


def render_markdown(report: dict[str, Any]) -> str:
    impl = report.get("implementation", {})
    lines = [
        f"# meshproof conformance report — run {report.get('runId', '?')}",
        "",
        f"- status: **{report.get('status', '?')}**"
        + (f" ({report['abortReason']})" if report.get("abortReason") else ""),
        f"- implementation: {impl.get('project', '?')} {impl.get('version', '?')} "
        f"({impl.get('distribution', '?')}, installed with {impl.get('installer', '?')})",
        f"- platform: {report.get('platform', {}).get('provider', '?')}; mode: {report.get('mode', '?')}; "
        f"features: {', '.join(report.get('features', [])) or 'none'}",
        "- summary: " + ", ".join(f"{k} {v}" for k, v in report.get("summary", {}).items() if v),
        "",
        "| feature | result | passed | failed | skipped | unsupported |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report.get("results", {}).items():
        lines.append(
            f"| {name} | {entry.get('result')} | {entry.get('passed', 0)} | "
            f"{entry.get('failed', 0) + entry.get('error', 0)} | {entry.get('skipped', 0)} | "
            f"{entry.get('unsupported', 0)} |"
        )
    not_run = report.get("notRun", [])
    if not_run:
        lines += ["", "## Not run", ""]
        lines += [f"- `{t['name']}` — {t['outcome']}: {t.get('reason', '')}" for t in not_run]
    failed = [t for t in report.get("tests", []) if t.get("outcome") in ("failed", "error")]
    if failed:
        lines += ["", "## Failed", ""]
        lines += [f"- `{t['name']}`" for t in failed]
    lines += ["", "## Reproduce", "", "```", report.get("reproduce", {}).get("command", ""), "```", ""]
    return "\n".join(lines)
