"""`meshproof <command>` imports only that command: `cleanup` against a dead cluster or `doctor` must not
pay for scipy and matplotlib (seconds on a loaded machine), which only `bench` needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshproof.cli import COMMANDS, chosen_command

PROBE = """
import sys
from meshproof.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in ("scipy", "matplotlib") if m in sys.modules))
"""


def _heavy_modules_after(argv: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120
    )
    return done.stdout.strip().splitlines()[-1]


def test_a_command_other_than_bench_does_not_import_the_statistics_stack():
    assert _heavy_modules_after(["cleanup", "--help"]) == "[]"
    assert _heavy_modules_after(["bench", "--help"]) == "['matplotlib', 'scipy']"


@pytest.mark.parametrize(
    ("argv", "chosen"),
    [
        (["cleanup", "--all"], "cleanup"),
        (["-v", "doctor"], "doctor"),
        (["--help"], None),
        (["clenaup"], None),  # a typo: argparse lists every command
        ([], None),
    ],
)
def test_the_chosen_command_is_the_first_argument_that_is_not_an_option(argv, chosen):
    assert chosen_command(argv) == chosen
    assert chosen is None or chosen in COMMANDS
