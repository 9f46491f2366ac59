"""The verdict of a run: conformant or not, the exit code that says so, and one line saying why.

A pure function over the conformance report's data (the YAML as a dict), so the pytest run, `meshproof
report DIR` and `meshproof certify` reach the same verdict from the same file. Nothing verified is never
green: a run is conformant only when it ran to its end, something passed, nothing failed, and every test its
certification profile requires passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """pytest's own exit codes, so `pytest` and `meshproof` agree on what each number means."""

    CONFORMANT = 0
    FAILED = 1  # a test failed or errored, or a required test did not pass
    STOPPED = 2  # interrupted (Ctrl-C, SIGTERM) or aborted part-way (provisioning failed)
    INTERNAL = 3
    NOT_STARTED = 4  # usage error, unknown marker, missing prerequisites: no test could run
    NOTHING_VERIFIED = 5  # no test selected, every selected test unsupported or skipped, zero passed


@dataclass(frozen=True)
class Verdict:
    conformant: bool
    exit_code: int
    reason: str


def judge(report: Mapping[str, Any]) -> Verdict:
    """The verdict for one conformance report; the first rule that fails decides the reason."""
    status = str(report.get("status", "?"))
    summary: Mapping[str, int] = report.get("summary") or {}
    abort = report.get("abortReason")
    abort_message = abort.get("message", "") if isinstance(abort, Mapping) else str(abort or "")
    if status == "aborted":
        # stopped before the first test (preflight, selection, usage): 4; part-way (provisioning): 2;
        # pytest's own internal error: 3, as pytest itself exits
        phase = abort_phase(report)
        exit_code = PHASE_EXIT_CODES.get(phase, ExitCode.NOT_STARTED)
        step = abort.get("step") if isinstance(abort, Mapping) else None
        # the error itself was printed once already; this line names where it happened
        where = f"aborted during {phase}" if phase else "aborted"
        detail = f"{step}; details in abortReason" if step else (abort_message or "no reason recorded")
        return Verdict(False, exit_code, f"not conformant: {where} ({detail})")
    if status != "complete":
        return Verdict(False, ExitCode.STOPPED, f"not conformant: the run is {status}, not complete")
    failed = int(summary.get("failed", 0)) + int(summary.get("error", 0))
    if failed:
        return Verdict(False, ExitCode.FAILED, f"not conformant: {failed} test(s) failed or errored")
    selected = sum(int(v) for v in summary.values())
    if selected == 0:
        return Verdict(False, ExitCode.NOTHING_VERIFIED, "not conformant: no test was selected")
    if int(summary.get("unsupported", 0)) == selected:
        return Verdict(
            False,
            ExitCode.NOTHING_VERIFIED,
            f"not conformant: every selected test ({selected}) is unsupported by this run's mode "
            "and features",
        )
    if int(summary.get("passed", 0)) == 0:
        return Verdict(
            False,
            ExitCode.NOTHING_VERIFIED,
            f"not conformant: no test passed ({_counts(summary)})",
        )
    missing = required_not_passed(report)
    if missing:
        profile = report.get("profile") or {}
        return Verdict(
            False,
            ExitCode.FAILED,
            f"not conformant: profile {profile.get('name')} requires {len(missing)} test(s) that did not "
            f"pass, first {missing[0]['name']} ({missing[0]['outcome']})",
        )
    if int(summary.get("notRun", 0)):
        return Verdict(
            False, ExitCode.STOPPED, f"not conformant: {summary['notRun']} selected test(s) never ran"
        )
    return Verdict(True, ExitCode.CONFORMANT, f"conformant: {_counts(summary)}")


def required_not_passed(report: Mapping[str, Any]) -> list[dict[str, str]]:
    profile = report.get("profile") or {}
    return [dict(t) for t in profile.get("required", []) if t.get("outcome") != "passed"]


PHASE_EXIT_CODES = {"provisioning": ExitCode.STOPPED, "internal": ExitCode.INTERNAL}


def abort_phase(report: Mapping[str, Any]) -> str:
    abort = report.get("abortReason")
    return str(abort.get("phase", "")) if isinstance(abort, Mapping) else ""


def _counts(summary: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in summary.items() if v) or "nothing ran"
