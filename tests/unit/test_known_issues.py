"""The known-issues skip list: scope, expiry, validation."""

from __future__ import annotations

from datetime import date

import pytest

from meshproof.config import ConfigError, load_config
from meshproof.known_issues import expired, load_known_issues

ENTRY = """
- test: "suites/conformance/test_authz.py::test_l7_*"
  reason: waypoint drops the first request after a policy change
  link: https://github.com/istio/istio/issues/12345
  expires: 2027-01-31
  scope: {mode: ambient, installer: sail}
"""


def test_entry_applies_in_scope_until_it_expires(tmp_path):
    path = tmp_path / "known.yaml"
    path.write_text(ENTRY)
    (issue,) = load_known_issues(path)
    ambient_sail = load_config({"mode": "ambient", "installer": "sail"}, env={})
    sidecar_sail = load_config({"mode": "sidecar", "installer": "sail"}, env={})
    node = "suites/conformance/test_authz.py::test_l7_path[ambient->waypoint/http]"
    assert issue.applies_to(node, ambient_sail, date(2027, 1, 31))
    assert not issue.applies_to(node, ambient_sail, date(2027, 2, 1)), "expired entries stop skipping"
    assert not issue.applies_to(node, sidecar_sail, date(2027, 1, 1)), "out of scope"
    assert not issue.applies_to("suites/conformance/test_mtls.py::test_x", ambient_sail, date(2027, 1, 1))
    assert "https://github.com/istio/istio/issues/12345" in issue.skip_reason()
    assert expired([issue], date(2027, 2, 1)) == [issue]
    assert expired([issue], date(2027, 1, 31)) == []


def test_missing_file_is_empty(tmp_path):
    assert load_known_issues(tmp_path / "none.yaml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- test: x\n  reason: r\n  link: not-a-url\n  expires: 2027-01-01\n", "entry 1: link"),
        ("- test: x\n  reason: r\n  link: https://x\n", "entry 1: expires: Field required"),
        (
            "- test: x\n  reason: r\n  link: https://x\n  expires: 2027-01-01\n  scope: {mode: cilium}\n",
            "scope.mode",
        ),
        ("test: x\n", "expected a list"),
    ],
)
def test_malformed_entries_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "known.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_known_issues(path)
