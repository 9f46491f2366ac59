"""Real tools for the local-real tier: found on this machine, or the test says why not.

A developer without fortio or curl gets a skip naming the tool. CI sets MESHPROOF_REQUIRE_REAL_TOOLS=1
(scripts/test-engine.sh), and there a missing tool fails the test: the local-real tier must never pass in
CI by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from meshproof.tools import ToolMissing, find_tool

REQUIRE_ENV = "MESHPROOF_REQUIRE_REAL_TOOLS"


def real_tool(name: str) -> Path:
    """The tool's path; skip (locally) or fail (CI) when it is missing."""
    try:
        return find_tool(name)
    except ToolMissing as exc:
        found = shutil.which(name)
        if found:
            return Path(found)
        message = f"{name} is not installed: {exc}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: the local-real tier needs it)", pytrace=False)
    pytest.skip(message)
