"""The verdict of a run: each rule that makes a run not conformant, on reports written by the real writer,
through `judge` and through `meshproof report DIR` (the same verdict, the same exit code)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshproof.cli import main
from meshproof.config import load_config
from meshproof.reporting.conformance import CaseResult, ConformanceReport, Outcome, RunStatus
from meshproof.reporting.conformance_markdown import render_markdown
from meshproof.reporting.verdict import ExitCode, judge


def written(tmp_path: Path, *results: CaseResult, status=RunStatus.COMPLETE, **report_fields) -> Path:
    cfg = load_config({"run_id": "r", "results_dir": str(tmp_path / "r")}, env={})
    report = ConformanceReport(config=cfg, status=status, **report_fields)
    for result in results:
        report.record(result)
    return report.write(cfg.results_dir)


def passed(name: str = "s::test_ok") -> CaseResult:
    return CaseResult(name, Outcome.PASSED, features=["mtls"])


UNSUPPORTED = CaseResult("s::test_sidecar", Outcome.UNSUPPORTED, reason="unsupported: needs sidecar mode")
SKIPPED = CaseResult("s::test_known", Outcome.SKIPPED, reason="known issue: x")

RULES = {
    "passes": ([passed(), UNSUPPORTED], {}, ExitCode.CONFORMANT, "conformant: 1 passed, 1 unsupported"),
    "a failure": (
        [passed(), CaseResult("s::b", Outcome.FAILED)],
        {},
        ExitCode.FAILED,
        "1 test(s) failed",
    ),
    "no test selected": ([], {}, ExitCode.NOTHING_VERIFIED, "no test was selected"),
    "every test unsupported": ([UNSUPPORTED], {}, ExitCode.NOTHING_VERIFIED, "every selected test (1)"),
    "zero passed": ([UNSUPPORTED, SKIPPED], {}, ExitCode.NOTHING_VERIFIED, "no test passed"),
    "interrupted": ([passed()], {"status": RunStatus.INTERRUPTED}, ExitCode.STOPPED, "interrupted"),
    "aborted in preflight": (
        [],
        {
            "status": RunStatus.ABORTED,
            "abort_reason": "docker missing",
            "abort_details": {"phase": "preflight"},
        },
        ExitCode.NOT_STARTED,
        "aborted during preflight (docker missing)",
    ),
    "unknown marker": (
        [],
        {
            "status": RunStatus.ABORTED,
            "abort_reason": "usage error: Unknown marker(s) in '-m' expression: ambeint.",
            "abort_details": {"phase": "selection"},
        },
        ExitCode.NOT_STARTED,
        "ambeint",
    ),
    "pytest internal error": (
        [CaseResult("s::a", Outcome.NOT_RUN)],
        {
            "status": RunStatus.ABORTED,
            "abort_reason": "pytest stopped with exit code 3 (internal_error)",
            "abort_details": {"phase": "internal"},
        },
        ExitCode.INTERNAL,
        "aborted during internal",
    ),
    "aborted in provisioning": (
        [CaseResult("s::a", Outcome.NOT_RUN)],
        {
            "status": RunStatus.ABORTED,
            "abort_reason": "kind create failed",
            "abort_details": {"phase": "provisioning", "step": "step 1/7 'Create kind cluster' on c1"},
        },
        ExitCode.STOPPED,
        "aborted during provisioning (step 1/7 'Create kind cluster' on c1",
    ),
    "a required profile test skipped": (
        [passed(), SKIPPED],
        {"profile": {"name": "ambient-core", "version": "1.0", "required": ["s::test_ok", "s::test_known"]}},
        ExitCode.FAILED,
        "profile ambient-core requires 1 test(s) that did not pass, first s::test_known (skipped)",
    ),
    "a required profile test never selected": (
        [passed()],
        {"profile": {"name": "ambient-core", "version": "1.0", "required": ["s::test_ok", "s::gone"]}},
        ExitCode.FAILED,
        "first s::gone (notRun)",
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_decides_the_verdict_and_the_report_command_agrees(rule, tmp_path, capsys):
    results, fields, exit_code, reason = RULES[rule]
    path = written(tmp_path, *results, **fields)
    data = yaml.safe_load(path.read_text())
    verdict = judge(data)
    assert (verdict.conformant, verdict.exit_code) == (exit_code == 0, exit_code)
    assert reason in verdict.reason
    assert data["verdict"] == {
        "conformant": exit_code == 0,
        "exitCode": int(exit_code),
        "reason": verdict.reason,
    }
    assert main(["report", str(path.parent)]) == exit_code
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"meshproof report: {verdict.reason}"  # one line saying which


def test_unsupported_and_skipped_never_count_as_passed(tmp_path):
    data = yaml.safe_load(written(tmp_path, UNSUPPORTED, SKIPPED, passed()).read_text())
    assert data["summary"]["passed"] == 1
    assert data["summary"]["unsupported"] == 1 and data["summary"]["skipped"] == 1


def test_markdown_and_html_of_an_aborted_run_name_the_step_not_a_feature(tmp_path):
    path = written(
        tmp_path,
        CaseResult(
            "s::test_authz", Outcome.NOT_RUN, features=["authz"], reason="aborted during provisioning"
        ),
        status=RunStatus.ABORTED,
        abort_reason="step 2/7 'Start cloud-provider-kind' on c1 failed: command failed (exit 1)",
        abort_details={
            "phase": "provisioning",
            "step": "step 2/7 'Start cloud-provider-kind' on c1",
            "command": "docker run cloud-provider-kind",
            "stderr": ["docker: Cannot connect to the Docker daemon", "<script>alert(1)</script>"],
        },
    )
    markdown = render_markdown(yaml.safe_load(path.read_text()))
    assert "## aborted during provisioning: step 2/7 'Start cloud-provider-kind' on c1" in markdown
    assert "docker: Cannot connect to the Docker daemon" in markdown
    assert "| authz | notRun | 0 | 0 | 0 | 0 | 1 |" in markdown  # not "authz failed"
    assert "authz | failed" not in markdown

    assert main(["report", str(path.parent)]) == ExitCode.STOPPED
    page = (path.parent / "conformance-report.html").read_text()
    assert (
        "<h2>aborted during provisioning: step 2/7 &#x27;Start cloud-provider-kind&#x27; on c1</h2>" in page
    )
    assert "<td>authz</td><td>notRun</td>" in page
    assert (
        "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    )  # report text stays inert
