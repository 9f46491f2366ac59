"""The README stays true: its options table names every shared option, its two commands are the ones CI
and users run."""

from __future__ import annotations

import re
from pathlib import Path

from meshproof.config import OPTIONS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_options_table_lists_every_shared_option():
    table_flags = set(re.findall(r"^\| `(--[a-z-]+)` \|", README, re.M))
    assert {o.flag for o in OPTIONS} <= table_flags, "README options table misses a shared option"


def test_the_test_command_is_the_one_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    main_job, engine_tests = (b.strip() for b in blocks[:2])
    assert "pytest -m ambient --provider kind" in main_job
    assert engine_tests in (REPO / ".ci" / "run").read_text()
