"""What the report says when a run stops during provisioning: the phase, the failing step, its command and
the tool's last stderr lines, read from the exception chain the provisioning code raised.

Pure: it reads exception objects and never talks to a cluster. The step comes from the executor's message
(`step 2/7 '<title>' on <cluster> failed: ...`, meshproof.mesh.install.apply_plan), the command and stderr
from the tools.CommandFailed / CommandTimeout that caused it. Everything is redacted like any artifact.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from meshproof.redact import redact_text

STDERR_LINES = 10
LINE_LIMIT = 300
COMMAND_LIMIT = 500
_STEP = re.compile(r"^(step \d+/\d+ '.*?' on \S+) failed: ")


def abort_details(exc: BaseException, phase: str) -> dict[str, Any]:
    """{phase, message, step?, command?, stderr?} for the exception that stopped provisioning."""
    from meshproof.tools import CommandFailed, CommandTimeout

    details: dict[str, Any] = {"phase": phase, "message": redact_text(one_line(exc))}
    for link in exception_chain(exc):
        step = _STEP.match(str(link))
        if step and "step" not in details:
            details["step"] = step.group(1)
        if isinstance(link, CommandFailed):
            details["command"] = _command(link.result.args)
            details["exitCode"] = link.result.returncode
            details["stderr"] = last_lines(link.result.stderr or link.result.stdout)
            break
        if isinstance(link, CommandTimeout):
            details["command"] = _command(link.args_run)
            details["timeoutSeconds"] = link.timeout
            details["stderr"] = last_lines(link.stderr)
            break
    return details


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception, then what caused it (explicit cause, else the context), without cycles."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def last_lines(text: str, count: int = STDERR_LINES) -> list[str]:
    lines = [line.rstrip() for line in redact_text(text or "").splitlines() if line.strip()]
    return [clip(line, LINE_LIMIT) for line in lines[-count:]]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _command(args: Any) -> str:
    """The command line as the tools module shows it (secret-bearing flags masked), then redacted."""
    from meshproof.tools import redact_args

    return clip(redact_text(shlex.join(redact_args([str(a) for a in args]))), COMMAND_LIMIT)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
