"""Run ids that cannot escape the results directory, and a fresh results dir per run unless reuse is asked.

The pytest runs go through pytester with the real run plugin (preflight stubbed: these test where results
land, not prerequisites); `meshproof` commands run as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshproof.config import ConfigError, load_config
from meshproof.reporting.results_dir import MARKER, REUSE_ENV, prepare_results_dir, reuse_requested

PREFLIGHT_PASSES = """
import meshproof.commands.doctor as doctor
doctor.preflight = lambda cfg: []  # this inner run tests where results land, not prerequisites
pytest_plugins = ["fixtures.run"]
"""


# --- run ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["x/../y", "..", ".", ".hidden", "a b", "../reports", "x" * 64, "a\\b"])
def test_a_run_id_that_is_not_a_plain_name_is_refused_in_one_line(run_id: str):
    with pytest.raises(ConfigError) as err:
        load_config({}, env={"MESHPROOF_RUN_ID": run_id})
    assert str(err.value).startswith(f"MESHPROOF_RUN_ID: '{run_id}' is not a run id: use letters, digits")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("run_id", ["20261126-064501-a3f9", "nightly.42", "ci_run-7", "A"])
def test_plain_run_ids_are_accepted(run_id: str):
    cfg = load_config({}, env={"MESHPROOF_RUN_ID": run_id})
    assert cfg.run_id == run_id and cfg.results_dir == Path("reports") / run_id


def test_the_cli_refuses_a_traversing_run_id_with_one_line_and_writes_nothing(tmp_path: Path):
    meshproof = Path(sys.executable).parent / "meshproof"
    done = subprocess.run(
        [str(meshproof), "certify", "--bundle-only"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "MESHPROOF_RUN_ID": "x/../y"},
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "meshproof certify: MESHPROOF_RUN_ID: 'x/../y' is not a run id: use letters, digits, '.', '_' "
        "and '-', starting with a letter or digit, at most 63 characters"
    ]
    assert list(tmp_path.iterdir()) == []


def test_cleanup_refuses_a_run_id_that_is_not_one(capsys: pytest.CaptureFixture[str]):
    from meshproof.cli import main

    assert main(["cleanup", "--run-id", "a,meshproof.io/run-id!=b", "--provider", "existing"]) == 2
    assert "--run-id: 'a,meshproof.io/run-id!=b' is not a run id" in capsys.readouterr().err


# --- a fresh results dir --------------------------------------------------------------------------------


def test_a_missing_or_empty_dir_is_prepared_with_the_run_marker(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "new" / "run", tmp_path / "empty"):
        prepare_results_dir(path, "r1", reuse=False)
        assert (path / MARKER).read_text() == "r1\n"


def test_an_earlier_runs_results_are_refused_unless_reuse_is_asked(tmp_path: Path):
    results = tmp_path / "r1"
    prepare_results_dir(results, "r1", reuse=False)
    (results / "conformance-report.yaml").write_text("status: complete\n")
    (results / "artifacts" / "old-test").mkdir(parents=True)
    (results / "artifacts" / "old-test" / "pod.log").write_text("stale\n")
    with pytest.raises(ConfigError, match=rf"already holds the results of an earlier run; .* {REUSE_ENV}=1"):
        prepare_results_dir(results, "r2", reuse=False)
    assert (results / "artifacts" / "old-test" / "pod.log").exists()  # refusing touches nothing
    prepare_results_dir(results, "r2", reuse=True)
    assert sorted(p.name for p in results.iterdir()) == [MARKER]
    assert (results / MARKER).read_text() == "r2\n"


def test_a_dir_meshproof_did_not_write_is_never_emptied(tmp_path: Path):
    (tmp_path / "thesis.tex").write_text("years of work\n")
    with pytest.raises(ConfigError, match="holds no meshproof results; choose an empty directory"):
        prepare_results_dir(tmp_path, "r1", reuse=True)
    assert (tmp_path / "thesis.tex").exists()


def test_the_same_run_preparing_its_dir_twice_is_fine(tmp_path: Path):
    """certify prepares the dir, then its pytest child (same run id) prepares it again."""
    prepare_results_dir(tmp_path / "r", "r1", reuse=False)
    prepare_results_dir(tmp_path / "r", "r1", reuse=False)


def test_reuse_is_asked_with_a_boolean():
    assert reuse_requested({REUSE_ENV: "1"}) and not reuse_requested({})
    with pytest.raises(ConfigError, match=f"{REUSE_ENV}: 'maybe' is not a boolean"):
        reuse_requested({REUSE_ENV: "maybe"})


def test_a_reused_run_id_leaves_no_stale_files(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makeconftest(PREFLIGHT_PASSES)
    pytester.makepyfile("def test_a():\n    pass\n")
    monkeypatch.setenv("MESHPROOF_RUN_ID", "nightly-1")
    results = pytester.path / "reports" / "nightly-1"
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 0
    stale = results / "artifacts" / "test-from-last-night" / "pod.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's dump\n")

    again = pytester.runpytest("-p", "no:cacheprovider")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"already holds the results of an earlier run; use a new run id, remove it, or set {REUSE_ENV}=1"
        in (again.stderr.str())
    )
    assert stale.exists()

    monkeypatch.setenv(REUSE_ENV, "1")
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 0
    assert not stale.exists()
    assert (results / "conformance-report.yaml").exists()


def test_a_traversing_run_id_stops_pytest_before_anything_is_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytester.makeconftest(PREFLIGHT_PASSES)
    pytester.makepyfile("def test_a():\n    pass\n")
    monkeypatch.setenv("MESHPROOF_RUN_ID", "x/../y")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "MESHPROOF_RUN_ID: 'x/../y' is not a run id" in result.stderr.str()
    assert not (pytester.path / "reports").exists()
