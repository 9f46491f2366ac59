"""The mTLS and authz suites collect into the expected matrix without a cluster.

Runs pytest in a subprocess from the repository root (as a user would), with a kubeconfig that does not
exist: collection must neither need a cluster nor hit the run plugin's preflight. A tiny plugin prints the
skip markers the run plugin adds, to show that a run in one mode reports the other mode's tests as
unsupported rather than dropping or running them. What this cannot show: that the tests pass on a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITES = ("suites/conformance/test_mtls.py", "suites/conformance/test_authz.py")
SHOW_SKIPS = """
def pytest_collection_finish(session):
    for item in session.items:
        marker = item.get_closest_marker("skip")
        reason = marker.kwargs.get("reason", "") if marker else ""
        print(f"ITEM {item.nodeid} SKIP={reason}")
"""


def collect(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPROOF_")}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    (tmp_path / "meshproof_show_skips.py").write_text(SHOW_SKIPS)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "meshproof_show_skips",
            "--results-dir",
            str(tmp_path / "results"),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def items(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("ITEM "):
            nodeid, _, reason = line.removeprefix("ITEM ").partition(" SKIP=")
            found[nodeid] = reason
    return found


@pytest.fixture(scope="module")
def ambient_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return collect(tmp_path_factory.mktemp("ambient"), "-m", "mtls or authz", "--mode", "ambient", *SUITES)


def test_collection_needs_no_cluster(ambient_run: subprocess.CompletedProcess[str]) -> None:
    assert ambient_run.returncode == 0, ambient_run.stdout[-2000:] + ambient_run.stderr[-2000:]
    assert "45 tests collected" in ambient_run.stdout


def test_the_matrix_has_readable_mode_ids(ambient_run: subprocess.CompletedProcess[str]) -> None:
    ids = set(items(ambient_run))
    authz = "suites/conformance/test_authz.py::"
    mtls = "suites/conformance/test_mtls.py::"
    for path in (
        "sidecar/http",
        "sidecar/tcp",
        "ambient/http",
        "ambient/tcp",
        "ambient->waypoint/http",
        "ambient->waypoint/tcp",
    ):
        for attribute in ("by-principal", "by-namespace"):
            assert f"{authz}test_allow_admits_only_the_named_source[{path}-{attribute}]" in ids
            assert f"{authz}test_deny_refuses_only_the_named_source[{path}-{attribute}]" in ids
        assert f"{authz}test_deny_takes_precedence_over_allow[{path}]" in ids
    assert f"{authz}test_l7_rules_on_path_and_method[sidecar/http]" in ids
    assert f"{authz}test_l7_rules_on_path_and_method[ambient->waypoint/http]" in ids
    assert f"{authz}test_l7_rule_enforced_by_ztunnel_fails_closed[ambient/http]" in ids
    assert f"{authz}test_custom_and_audit_are_unsupported_on_ztunnel[ambient/CUSTOM]" in ids
    for mode in ("sidecar/STRICT", "sidecar/PERMISSIVE", "ambient/STRICT", "ambient/PERMISSIVE"):
        assert f"{mtls}test_mesh_traffic_is_mutual_tls_with_the_client_identity[{mode}]" in ids
        assert f"{mtls}test_plaintext_from_outside_the_mesh[{mode}]" in ids
    assert f"{mtls}test_workload_certificate_chains_to_the_mesh_root[ambient]" in ids


def test_an_ambient_run_reports_sidecar_tests_as_unsupported(
    ambient_run: subprocess.CompletedProcess[str],
) -> None:
    found = items(ambient_run)
    sidecar = {n: r for n, r in found.items() if "[sidecar" in n}
    others = {n: r for n, r in found.items() if "[sidecar" not in n}
    assert len(sidecar) == 16
    assert all(r.startswith("unsupported:") and "sidecar" in r for r in sidecar.values())
    assert all(r == "" for r in others.values()), {n: r for n, r in others.items() if r}


def test_a_sidecar_run_reports_ambient_and_waypoint_tests_as_unsupported(tmp_path: Path) -> None:
    found = items(collect(tmp_path, "-m", "mtls or authz", "--mode", "sidecar", *SUITES))
    unsupported = {n for n, r in found.items() if r.startswith("unsupported:")}
    assert unsupported == {n for n in found if "[sidecar" not in n}
    assert any("waypoint" in n for n in unsupported)


def test_every_parameter_carries_a_mode_marker(tmp_path: Path) -> None:
    """`pytest -m ambient` / `-m sidecar` select every test: none is left without a mode."""
    result = collect(tmp_path, "-m", "(mtls or authz) and not sidecar and not ambient", *SUITES)
    assert items(result) == {}
    assert "45 deselected" in result.stdout
