"""Certification profiles: fixed selections, refused narrowing, required tests listed with outcomes, and a
required selection that is not empty on today's suites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshproof.config import ConfigError, load_config
from meshproof.profiles import PROFILES, get_profile, matches

REPO = Path(__file__).resolve().parents[2]

PREFLIGHT_PASSES = """
import meshproof.commands.doctor as doctor
doctor.preflight = lambda cfg: []  # this inner run tests profile selection, not prerequisites
pytest_plugins = ["fixtures.run"]
"""

INNER_SUITE = """
import pytest

@pytest.mark.ambient
@pytest.mark.mtls
def test_ambient_mtls():
    pass

@pytest.mark.ambient
@pytest.mark.authz
def test_ambient_authz():
    pytest.skip("known issue: upstream bug")

@pytest.mark.sidecar
@pytest.mark.mtls
def test_sidecar_mtls():
    pass

@pytest.mark.ambient
@pytest.mark.authz
@pytest.mark.waypoint
def test_waypoint_l7():
    pass

@pytest.mark.gie
def test_gie_routing():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    import tomllib

    ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    pytester.makeconftest(PREFLIGHT_PASSES)
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in ini["markers"]))
    pytester.makepyfile(test_inner=INNER_SUITE)
    return pytester


def test_a_profile_run_lists_every_required_test_and_a_skipped_one_is_not_conformant(
    inner: pytest.Pytester, tmp_path: Path
):
    results = tmp_path / "r"
    result = inner.runpytest(
        "--profile-name",
        "ambient-core",
        "--mode",
        "ambient",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2, skipped=2, deselected=1)  # gie is not in ambient-core
    assert result.ret == 1
    data = yaml.safe_load((results / "conformance-report.yaml").read_text())
    profile = data["profile"]
    assert (profile["name"], profile["version"]) == ("ambient-core", "1.0")
    required = {t["name"].split("::")[1]: t["outcome"] for t in profile["required"]}
    optional = {t["name"].split("::")[1]: t["outcome"] for t in profile["optional"]}
    assert required == {"test_ambient_mtls": "passed", "test_ambient_authz": "skipped"}
    assert optional == {"test_sidecar_mtls": "unsupported", "test_waypoint_l7": "passed"}
    assert "profile ambient-core requires 1 test(s) that did not pass" in data["verdict"]["reason"]
    argv = data["reproduce"]["command"].split()
    assert argv[argv.index("--profile-name") + 1] == "ambient-core"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "mtls"], "profile ambient-core is a fixed selection; drop -m"),
        (["-k", "mtls"], "profile ambient-core is a fixed selection; drop -k"),
        (["test_inner.py::test_ambient_mtls"], "drop test paths"),
        (["--ignore", "test_inner.py"], "drop --ignore"),
        (["--ignore-glob", "*.py"], "drop --ignore-glob"),
        (["--mode", "sidecar"], "profile ambient-core is certified with --mode ambient"),
    ],
)
def test_a_profile_refuses_what_could_shrink_its_required_set(inner: pytest.Pytester, args, message):
    extra = [] if "--mode" in args else ["--mode", "ambient"]
    result = inner.runpytest("--profile-name", "ambient-core", *extra, *args, "-p", "no:cacheprovider")
    assert result.ret == 4
    errors = [ln for ln in result.errlines + result.outlines if "meshproof:" in ln]
    assert len(errors) == 1 and message in errors[0]


def test_profile_checks_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="unknown profile; choose one of ambient-core, sidecar-core"):
        get_profile("ambient")
    with pytest.raises(ConfigError, match=r"certified with --mode sidecar --features nftables"):
        get_profile("nftables").check_run(load_config({"mode": "ambient"}, env={}))
    get_profile("gie").check_run(load_config({"features": "gie"}, env={}))  # any mode


def test_marker_expressions_use_pytests_grammar():
    assert matches("ambient and not waypoint", {"ambient", "mtls"})
    assert not matches("ambient and not waypoint", {"ambient", "waypoint"})
    assert matches(PROFILES["gie"].required, {"gie", "feature"})


# --- the required selections on today's suites ---------------------------------------------------------

PRINT_MARKERS = """
def pytest_collection_finish(session):
    for item in session.items:
        print("ITEM", item.nodeid, "MARKERS=" + ",".join(sorted({m.name for m in item.iter_markers()})))
"""


@pytest.fixture(scope="module")
def suite_markers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Every conformance test of this tree with its markers, collected as a user's run collects them."""
    tmp = tmp_path_factory.mktemp("collect")
    (tmp / "meshproof_print_markers.py").write_text(PRINT_MARKERS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPROOF_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(REPO)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "meshproof_print_markers", "--results-dir", str(tmp / "r"), "suites/conformance"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("ITEM "):
            nodeid, _, markers = line.removeprefix("ITEM ").partition(" MARKERS=")
            found[nodeid] = set(markers.split(","))
    return found


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_requires_tests_that_exist(name: str, suite_markers: dict[str, set[str]]):
    profile = PROFILES[name]
    feature_markers = {"nftables", "istio_csr", "gie", "multicluster"}
    own_marker = next((m for m in feature_markers if m == profile.required), None)
    if own_marker and not (REPO / "suites" / "conformance" / f"test_{own_marker}.py").exists():
        pytest.skip(f"suites/conformance/test_{own_marker}.py is not in this tree yet")
    other_mode = {"ambient": "sidecar", "sidecar": "ambient"}.get(profile.mode or "")
    required = [
        nodeid
        for nodeid, markers in suite_markers.items()
        if matches(profile.required, markers) and "benchmark" not in markers
        and not (other_mode and other_mode in markers and (profile.mode or "") not in markers)
    ]  # fmt: skip
    assert required, f"profile {name} selects no required test with {profile.required!r}"


def test_under_xdist_the_controller_lists_the_required_tests_the_workers_ran(
    inner: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    results = tmp_path / "r"
    result = inner.runpytest_subprocess(
        str(inner.path), "-n", "2", "--profile-name", "ambient-core", "--mode", "ambient",
        "--results-dir", str(results), "-p", "no:cacheprovider", timeout=120,
    )  # fmt: skip
    assert result.ret == 1
    profile = yaml.safe_load((results / "conformance-report.yaml").read_text())["profile"]
    required = {t["name"].split("::")[1]: t["outcome"] for t in profile["required"]}
    assert required == {"test_ambient_mtls": "passed", "test_ambient_authz": "skipped"}
