"""The run plugin, exercised through pytester on throw-away suites.

Preflight is replaced by a stub in most of these inner runs (the inner conftest says so), because they test
reporting and selection, not prerequisites; test_preflight_* use the real preflight.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from fixtures_data.stand_ins import install_stand_ins

REPO = Path(__file__).resolve().parents[2]

PREFLIGHT_PASSES = """
import meshproof.commands.doctor as doctor
doctor.preflight = lambda cfg: []  # this inner run tests reporting, not prerequisites
pytest_plugins = ["fixtures.run"]
"""


@pytest.fixture
def suite(pytester: pytest.Pytester):
    pytester.makeconftest(PREFLIGHT_PASSES)
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers\n"
        f"junit_family = {_ini()['junit_family']}\n"  # the repository's choice, as a user's run has it
        "markers =\n" + "".join(f"    {m}\n" for m in _ini()["markers"])
    )
    return pytester


def _ini() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]


def read_report(results: Path) -> dict:
    return yaml.safe_load((results / "conformance-report.yaml").read_text())


def test_report_records_outcomes_features_and_unsupported(suite: pytest.Pytester, tmp_path: Path):
    suite.makepyfile(
        test_behaviour=textwrap.dedent(
            """
            import pytest

            @pytest.mark.mtls
            @pytest.mark.ambient
            def test_in_mesh_is_mtls():
                pass

            @pytest.mark.mtls
            @pytest.mark.sidecar
            def test_sidecar_only():
                pass

            @pytest.mark.authz
            @pytest.mark.feature("waypoint")
            def test_needs_waypoint():
                pass

            @pytest.mark.authz
            @pytest.mark.feature("gie")
            def test_needs_gie():
                pass

            @pytest.mark.authz
            def test_fails():
                assert False, "denied call went through"

            @pytest.mark.benchmark
            def test_benchmark():
                pass
            """
        )
    )
    results = tmp_path / "results"
    result = suite.runpytest("--results-dir", str(results), "--mode", "ambient", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, skipped=2, deselected=1)
    data = read_report(results)
    assert data["status"] == "complete"
    outcomes = {t["name"].split("::")[1]: t["outcome"] for t in data["tests"]}
    assert outcomes == {
        "test_in_mesh_is_mtls": "passed",
        "test_sidecar_only": "unsupported",
        "test_needs_waypoint": "passed",  # waypoints come with ambient mode
        "test_needs_gie": "unsupported",
        "test_fails": "failed",
    }
    reasons = {r["name"].split("::")[1]: r["reason"] for r in data["notRun"]}
    assert "needs sidecar mode; this run is for ambient mode (--mode ambient)" in reasons["test_sidecar_only"]
    assert "add --features gie" in reasons["test_needs_gie"]
    assert data["results"]["mtls"]["result"] == "passed"  # unsupported tests do not make it partial
    assert data["results"]["authz"]["failed"] == 1
    assert (results / "junit.xml").exists()
    assert any((results / "allure-results").glob("*-result.json")), "Allure results land in the run dir"


def test_benchmarks_run_only_when_selected(suite: pytest.Pytester, tmp_path: Path):
    suite.makepyfile(
        "import pytest\n@pytest.mark.benchmark\ndef test_b():\n    pass\ndef test_c():\n    pass\n"
    )
    result = suite.runpytest(
        "--results-dir", str(tmp_path / "r"), "-m", "benchmark", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, deselected=1)


def test_report_is_written_when_the_run_is_interrupted(suite: pytest.Pytester, tmp_path: Path):
    suite.makepyfile(
        "def test_first():\n    pass\n"
        "def test_second():\n    raise KeyboardInterrupt\n"
        "def test_third():\n    pass\n"
    )
    results = tmp_path / "results"
    result = suite.runpytest("--results-dir", str(results), "-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = read_report(results)
    assert data["status"] == "interrupted"
    # every selected test is in the report: the ones the interruption stopped as notRun
    assert {t["name"].split("::")[1]: t["outcome"] for t in data["tests"]} == {
        "test_first": "passed",
        "test_second": "notRun",
        "test_third": "notRun",
    }


def test_sigterm_interrupts_and_still_writes_the_report(
    suite: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    suite.makepyfile(
        "import os, signal\n"
        "def test_first():\n    pass\n"
        "def test_killed():\n    os.kill(os.getpid(), signal.SIGTERM)\n"
        "def test_never():\n    pass\n"
    )
    results = tmp_path / "results"
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = suite.runpytest_subprocess("--results-dir", str(results), "-p", "no:cacheprovider", timeout=60)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = read_report(results)
    assert data["status"] == "interrupted"
    assert {t["name"].split("::")[1]: t["outcome"] for t in data["tests"]} == {
        "test_first": "passed",
        "test_killed": "notRun",
        "test_never": "notRun",
    }


def test_xdist_workers_share_the_run_and_the_controller_writes_one_report(
    suite: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    suite.makepyfile(
        "import pytest\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_n(n, run_config, test_id):\n"
        "    assert run_config.run_id == 'shared-run'\n"
        "    assert len(test_id) <= 40\n"
    )
    results = tmp_path / "results"
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("MESHPROOF_RUN_ID", "shared-run")
    # the explicit path: xdist workers resolve the rootdir (and so the conftest) from the args
    result = suite.runpytest_subprocess(
        str(suite.path), "-n", "2", "--results-dir", str(results), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6)
    data = read_report(results)
    assert data["runId"] == "shared-run"
    assert data["summary"]["passed"] == 6


def test_preflight_stops_before_the_first_test_with_one_message(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Real preflight, on a PATH without docker or kind: one line, exit 4, aborted report, no test run."""
    pytester.makeconftest('pytest_plugins = ["fixtures.run"]\n')
    pytester.makepyfile("def test_needs_cluster():\n    raise AssertionError('must not run')\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    results = tmp_path / "results"
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "--provider",
        "kind",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        timeout=60,
    )
    assert result.ret == 4
    output = result.stdout.str() + result.stderr.str()
    assert "must not run" not in output
    assert "Traceback" not in output
    (line,) = [ln for ln in output.splitlines() if "cannot run the suites" in ln]
    assert line.startswith("ERROR: meshproof: cannot run the suites on provider 'kind'")
    assert "kind" in line and "docker" in line
    assert "meshproof tools install kind" in output  # how to get what is missing
    data = read_report(results)
    assert data["status"] == "aborted" and "cannot run the suites" in data["abortReason"]["message"]
    assert data["abortReason"]["phase"] == "preflight"


def test_collect_only_needs_no_cluster(pytester: pytest.Pytester, tmp_path: Path, monkeypatch):
    pytester.makeconftest('pytest_plugins = ["fixtures.run"]\n')
    pytester.makepyfile("def test_a():\n    pass\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = pytester.runpytest("--collect-only", "-q", "--provider", "kind", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_a*"])


def test_engine_test_runs_write_no_report(pytester: pytest.Pytester):
    from fixtures.run import make_test_id

    assert make_test_id("suites/x.py::test_a[ambient->waypoint/http]").startswith(
        "test-a-ambient-waypoint-http-"
    )
    long_id = make_test_id("s::" + "test_" + "x" * 100)
    assert len(long_id) <= 40 and long_id == make_test_id("s::" + "test_" + "x" * 100)


def test_impossible_combination_is_refused_before_looking_for_tools(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    pytester.makeconftest('pytest_plugins = ["fixtures.run"]\n')
    pytester.makepyfile("def test_x():\n    raise AssertionError('must not run')\n")
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    results = tmp_path / "results"
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "--mode",
        "ambient",
        "--features",
        "nftables",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        timeout=60,
    )
    assert result.ret == 4
    (line,) = [ln for ln in result.stdout.lines + result.stderr.lines if "cannot run the suites" in ln]
    assert "nftables" in line and "sidecar" in line
    assert read_report(results)["status"] == "aborted"


# --- verdicts: exit codes and statuses that mean something --------------------------------------------

MODE_TESTS = """
import pytest

@pytest.mark.mtls
@pytest.mark.sidecar
def test_sidecar_only():
    pass

@pytest.mark.authz
def test_skips_itself():
    pytest.skip("known issue: upstream bug")

@pytest.mark.authz
def test_passes():
    pass

@pytest.mark.authz
def test_fails():
    assert False, "denied call went through"
"""

EXIT_RULES = {
    "conformant": (["-k", "passes"], 0, "conformant: 1 passed"),
    "a failure": (["-k", "passes or fails"], 1, "not conformant: 1 test(s) failed or errored"),
    "no test selected": (["-m", "gie"], 5, "not conformant: no test was selected"),
    "unknown marker": (["-m", "ambeint"], 4, "not conformant: aborted during selection"),
    "every test unsupported": (["-m", "sidecar"], 5, "every selected test (1) is unsupported"),
    "zero passed": (["-k", "skips_itself or sidecar_only"], 5, "no test passed (1 skipped, 1 unsupported)"),
}


@pytest.mark.parametrize("rule", EXIT_RULES)
def test_exit_code_follows_the_verdict(rule: str, suite: pytest.Pytester, tmp_path: Path):
    args, exit_code, reason = EXIT_RULES[rule]
    suite.makepyfile(test_modes=MODE_TESTS)
    results = tmp_path / "results"
    result = suite.runpytest(
        "--mode", "ambient", "--results-dir", str(results), "-p", "no:cacheprovider", *args
    )
    assert result.ret == exit_code
    data = read_report(results)
    assert data["verdict"]["exitCode"] == exit_code and reason in data["verdict"]["reason"]
    lines = [ln for ln in result.outlines if ln.startswith("meshproof: ") and "conformant" in ln]
    assert len(lines) == 1 and reason in lines[0]  # one line saying which
    if rule == "unknown marker":
        assert data["status"] == "aborted" and data["abortReason"]["phase"] == "selection"
        assert "ambeint" in data["abortReason"]["message"]


def test_a_usage_error_is_one_line_and_exit_4(suite: pytest.Pytester):
    suite.makepyfile(test_modes=MODE_TESTS)
    result = suite.runpytest("--mode", "bogus", "-p", "no:cacheprovider")
    assert result.ret == 4
    errors = [ln for ln in result.errlines + result.outlines if "meshproof:" in ln]
    assert len(errors) == 1 and "--mode" in errors[0]


def test_failed_tests_carry_their_failure_message(suite: pytest.Pytester, tmp_path: Path):
    suite.makepyfile(test_modes=MODE_TESTS)
    results = tmp_path / "results"
    suite.runpytest("--mode", "ambient", "--results-dir", str(results), "-p", "no:cacheprovider")
    tests = {t["name"].split("::")[1]: t for t in read_report(results)["tests"]}
    assert tests["test_fails"]["failure"].startswith("AssertionError: denied call went through")
    assert "failure" not in tests["test_passes"]


def test_evidence_properties_reach_junit_xml(suite: pytest.Pytester, tmp_path: Path):
    """junit_family xunit2 dropped every record_property; the repository's family keeps them."""
    import xml.etree.ElementTree as ET

    suite.makepyfile(
        "def test_identity(record_property):\n"
        "    record_property('evidence.identity', 'spiffe://cluster.local/ns/a/sa/client')\n"
    )
    results = tmp_path / "results"
    result = suite.runpytest("--results-dir", str(results), "-p", "no:cacheprovider")
    assert result.ret == 0
    assert "incompatible with junit_family" not in result.stdout.str()
    case = ET.parse(results / "junit.xml").getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["evidence.identity"] == "spiffe://cluster.local/ns/a/sa/client"


# --- provisioning that fails: abortReason, notRun, one message, live progress ---------------------------


def test_provisioning_failure_aborts_the_run_and_the_report_explains_it(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The real kind provider and executor, against a stand-in kind that refuses `create cluster`."""
    pytester.makeconftest(
        PREFLIGHT_PASSES.replace('["fixtures.run"]', '["fixtures.run", "fixtures.clusters"]')
    )
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in _ini()["markers"]))
    pytester.makepyfile(
        test_cluster=(
            "import pytest\n"
            "@pytest.mark.authz\n"
            "def test_first(cluster):\n    pass\n"
            "@pytest.mark.mtls\n"
            "def test_second(cluster):\n    pass\n"
            "def test_third():\n    pass\n"
        )
    )
    monkeypatch.setenv("PATH", install_stand_ins(tmp_path / "bin", ("kind",)))
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("MESHPROOF_CACHE_DIR", str(tmp_path / "cache"))
    results = tmp_path / "results"
    result = pytester.run(
        sys.executable, "-m", "pytest", "--provider", "kind", "--results-dir", str(results),
        "-p", "no:cacheprovider", timeout=120,
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 2, output
    # the error, once; pytest's own short-summary line (`ERROR test_x - …`, cut to the terminal width)
    # may or may not reach the refusal text depending on the temp path's length, so it is not counted
    body = "\n".join(ln for ln in output.splitlines() if not ln.startswith("ERROR "))
    assert body.count("line one of the refusal") == 1, output
    # live progress on the terminal, not only under "Captured stdout" after the failure
    assert "Captured stdout" not in output
    progress = [ln for ln in result.outlines if ln.startswith("meshproof: [0:")]
    assert any("step 1/" in ln and "running" in ln for ln in progress), output
    data = read_report(results)
    assert data["status"] == "aborted"
    abort = data["abortReason"]
    assert abort["phase"] == "provisioning"
    assert abort["step"].startswith("step 1/") and "on meshproof" in abort["step"]
    assert abort["command"].split()[1:3] == ["create", "cluster"]
    assert abort["stderr"][-2:] == [
        "stand-in kind: line one of the refusal",
        f"stand-in kind: cannot {abort['command'].split(' ', 1)[1]}",
    ]
    outcomes = {t["name"].split("::")[1]: (t["outcome"], t.get("reason", "")) for t in data["tests"]}
    assert outcomes == {
        "test_first": ("notRun", "aborted during provisioning"),
        "test_second": ("notRun", ""),
        "test_third": ("notRun", ""),
    }
    assert data["results"]["authz"]["result"] == "notRun"  # no feature is blamed
    assert data["verdict"]["exitCode"] == 2
    assert "aborted during provisioning (step 1/" in data["verdict"]["reason"]
