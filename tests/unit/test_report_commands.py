"""`meshproof report` and `meshproof certify --bundle-only` through the real CLI entry point."""

from __future__ import annotations

import argparse

from meshproof.cli import main
from meshproof.commands.certify import pytest_command
from meshproof.config import add_argparse_options, load_config
from meshproof.reporting.conformance import CaseResult, ConformanceReport, Outcome, RunStatus


def write_report(tmp_path, outcome=Outcome.PASSED, status=RunStatus.COMPLETE):
    cfg = load_config({"run_id": "r", "results_dir": str(tmp_path / "r")}, env={})
    report = ConformanceReport(config=cfg, status=status)
    report.record(CaseResult("s::test_a", outcome, features=["authz"]))
    report.record(
        CaseResult("s::test_b", Outcome.UNSUPPORTED, features=["gie"], reason="unsupported: no gie")
    )
    report.write(cfg.results_dir)
    return cfg.results_dir


def test_report_prints_features_writes_markdown_and_exits_by_outcome(tmp_path, capsys):
    good = write_report(tmp_path / "good")
    assert main(["report", str(good)]) == 0
    out = capsys.readouterr().out
    assert "| authz | passed | 1 | 0 | 0 | 0 | 0 |" in out
    assert "`s::test_b` — unsupported: unsupported: no gie" in out
    assert (good / "conformance-report.md").read_text().startswith("# meshproof conformance report")
    bad = write_report(tmp_path / "bad", outcome=Outcome.FAILED)
    assert main(["report", str(bad)]) == 1
    interrupted = write_report(tmp_path / "int", status=RunStatus.INTERRUPTED)
    assert main(["report", str(interrupted)]) == 2  # stopped part-way: pytest's "interrupted"


def test_report_on_a_dir_without_report_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().out.strip().count("\n") == 0


def test_certify_bundle_only(tmp_path, capsys):
    results = write_report(tmp_path)
    assert main(["certify", "--bundle-only", "--results-dir", str(results)]) == 0
    assert "bundle" in capsys.readouterr().out
    assert (tmp_path / "r.certification.tar.gz").is_file()
    failed = write_report(tmp_path / "f", outcome=Outcome.FAILED)
    assert main(["certify", "--bundle-only", "--results-dir", str(failed)]) == 1
    assert "does not prove conformance" in capsys.readouterr().err


def test_certify_passes_the_same_options_to_the_suites(tmp_path):
    parser = argparse.ArgumentParser()
    add_argparse_options(parser)
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(["--mode", "sidecar", "--context", "a", "--keep-cluster", "--", "-m", "mtls"])
    cfg = load_config({"results_dir": str(tmp_path)}, env={})
    command = pytest_command(args, cfg.results_dir)
    assert command[1:4] == ["-m", "pytest", "suites/conformance"]
    assert command[command.index("--mode") + 1] == "sidecar"
    assert "--keep-cluster" in command and command[command.index("--context") + 1] == "a"
    assert command[-2:] == ["-m", "mtls"]
