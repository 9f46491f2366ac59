"""The conformance report as Markdown, for people (the YAML is for machines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.reporting.verdict import judge


def render_markdown(report: dict[str, Any]) -> str:
    impl = report.get("implementation", {})
    verdict = judge(report)
    lines = [
        f"# meshproof conformance report — run {report.get('runId', '?')}",
        "",
        f"- verdict: **{verdict.reason}** (exit code {verdict.exit_code})",
        f"- status: **{report.get('status', '?')}**",
        f"- implementation: {impl.get('project', '?')} {impl.get('version', '?')} "
        f"({impl.get('distribution', '?')}, installed with {impl.get('installer', '?')})",
        f"- platform: {report.get('platform', {}).get('provider', '?')}; mode: {report.get('mode', '?')}; "
        f"features: {', '.join(report.get('features', [])) or 'none'}",
        "- summary: "
        + (", ".join(f"{k} {v}" for k, v in report.get("summary", {}).items() if v) or "nothing"),
    ]
    lines += _abort_section(report.get("abortReason"))
    profile = report.get("profile")
    lines += ["", *_profile_section(profile)] if isinstance(profile, Mapping) else []
    lines += [
        "",
        "| feature | result | passed | failed | skipped | unsupported | not run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in report.get("results", {}).items():
        lines.append(
            f"| {name} | {entry.get('result')} | {entry.get('passed', 0)} | "
            f"{entry.get('failed', 0) + entry.get('error', 0)} | {entry.get('skipped', 0)} | "
            f"{entry.get('unsupported', 0)} | {entry.get('notRun', 0)} |"
        )
    not_run = report.get("notRun", [])
    if not_run:
        lines += ["", "## Not run", ""]
        lines += [f"- `{t['name']}` — {t['outcome']}: {t.get('reason', '')}" for t in not_run]
    failed = [t for t in report.get("tests", []) if t.get("outcome") in ("failed", "error")]
    if failed:
        lines += ["", "## Failed", ""]
        lines += [f"- `{t['name']}`: {_first_line(t.get('failure', ''))}" for t in failed]
    lines += ["", "## Reproduce", "", "```", report.get("reproduce", {}).get("command", ""), "```", ""]
    return "\n".join(lines)


def abort_headline(abort: Any) -> str:
    """'aborted during provisioning: <step>' (or the preflight/usage message): what stopped the run."""
    if not abort:
        return ""
    if not isinstance(abort, Mapping):
        return f"aborted: {abort}"
    phase = abort.get("phase") or "start"
    return f"aborted during {phase}: {abort.get('step') or abort.get('message', '')}"


def _abort_section(abort: Any) -> list[str]:
    if not abort:
        return []
    lines = ["", "## " + abort_headline(abort), ""]
    if isinstance(abort, Mapping):
        lines.append(f"- error: {abort.get('message', '')}")
        if abort.get("command"):
            lines.append(f"- command: `{abort['command']}`")
        if abort.get("stderr"):
            lines += ["- last stderr lines:", "", "```", *abort["stderr"], "```"]
    lines += ["", "Selected tests that had not run when the run stopped are listed as notRun."]
    return lines


def _profile_section(profile: Mapping[str, Any]) -> list[str]:
    lines = [
        f"## Profile {profile.get('name')} v{profile.get('version')}",
        "",
        "| required test | outcome |",
        "|---|---|",
    ]
    lines += [f"| `{t['name']}` | {t['outcome']} |" for t in profile.get("required", [])]
    optional = profile.get("optional", [])
    if optional:
        lines += ["", "| optional test | outcome |", "|---|---|"]
        lines += [f"| `{t['name']}` | {t['outcome']} |" for t in optional]
    return lines


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
