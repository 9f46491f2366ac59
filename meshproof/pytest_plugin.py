"""meshproof's options, registered through the `pytest11` entry point (pyproject.toml).

An entry-point plugin loads before pytest parses the command line and picks its rootdir, so
`--kubeconfig /some/file` (space form, a file outside the repository) is read as an option value, not as a
test path that would move the rootdir out of the repository. It loads for every pytest run in this
environment, the engine's own `pytest tests` included, so it only adds options: the run plugin
(fixtures.run, loaded by the repository's conftest.py) does everything else, and only for suite runs.
"""

from __future__ import annotations

import pytest

from meshproof.config import add_pytest_options

KNOWN_ISSUES_FILE = "suites/known-issues.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof", "meshproof run options (also MESHPROOF_* env and --profile YAML)")
    add_pytest_options(group)
    group.addoption(
        "--known-issues",
        dest="known_issues",
        default=None,
        metavar="FILE",
        help=f"YAML skip list with reason, link, scope, expiry (default {KNOWN_ISSUES_FILE})",
    )
    group.addoption(
        "--profile-name",
        dest="profile_name",
        default=None,
        metavar="NAME",
        help="certification profile: a fixed selection of required and optional tests (see README)",
    )
