"""abortReason details from the exception chain the real executor and tool runner raise."""

from __future__ import annotations

import sys

import pytest

from meshproof import tools
from meshproof.reporting.abort import abort_details, last_lines


def failing(code: str, timeout: float = 10) -> BaseException:
    try:
        tools.run([sys.executable, "-c", code], timeout=timeout)
    except tools.ToolError as exc:
        try:
            raise RuntimeError("step 3/7 'Install istio' on c1 failed: " + str(exc)) from exc
        except RuntimeError as outer:
            return outer
    raise AssertionError("the command did not fail")


def test_a_failed_command_gives_step_command_exit_code_and_last_stderr_lines():
    code = "import sys\nfor i in range(15): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    details = abort_details(failing(code), "provisioning")
    assert details["phase"] == "provisioning"
    assert details["step"] == "step 3/7 'Install istio' on c1"
    assert details["command"].endswith("sys.exit(3)'") and details["exitCode"] == 3
    assert details["stderr"] == [f"line {i}" for i in range(5, 15)]  # the last ten


def test_a_timed_out_command_names_its_budget():
    details = abort_details(failing("import time; time.sleep(5)", timeout=0.5), "provisioning")
    assert details["timeoutSeconds"] == 0.5 and "time.sleep(5)" in details["command"]


@pytest.mark.parametrize(
    "secret",
    ["Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "token: s3cr3t-value-123"],
)
def test_stderr_in_the_report_is_redacted(secret):
    (line,) = last_lines(f"{secret}\n")
    assert "s3cr3t-value-123" not in line and "c2lnbmF0dXJl" not in line


def test_the_message_and_command_of_an_aborted_step_are_redacted_too():
    """The exception text repeats the tool's stderr, and the command line may carry a token flag."""
    code = "import sys; print('Authorization: Bearer s3cr3t-bearer-value-123', file=sys.stderr); sys.exit(1)"
    try:
        tools.run([sys.executable, "-c", code, "--token=supersecretvalue"], timeout=10)
    except tools.ToolError as exc:
        details = abort_details(exc, "provisioning")
    else:
        raise AssertionError("the command did not fail")
    for field in ("message", "command"):
        assert "s3cr3t-bearer-value-123" not in details[field], details
        assert "supersecretvalue" not in details[field], details
    assert "--token=" in details["command"]  # the flag stays named, its value does not
