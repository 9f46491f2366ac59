"""The conformance report: outcome mapping, per-feature results, reproduce line, atomic write."""

from __future__ import annotations

import shlex

import yaml

from meshproof.config import load_config
from meshproof.reporting.conformance import (
    REPORT_FILENAME,
    CaseResult,
    ConformanceReport,
    Outcome,
    RunStatus,
    Selection,
    classify_skip,
    reproduce_command,
)


def make_report(**cli):
    return ConformanceReport(config=load_config({"run_id": "r1", **cli}, env={}))


def test_unsupported_skips_are_not_plain_skips():
    assert classify_skip("unsupported: needs sidecar mode") is Outcome.UNSUPPORTED
    assert classify_skip("Skipped: unsupported: ztunnel does not apply CUSTOM") is Outcome.UNSUPPORTED
    assert classify_skip("known issue: flaky (https://x)") is Outcome.SKIPPED


def test_per_feature_counts_and_results():
    report = make_report()
    report.record(CaseResult("t::a", Outcome.PASSED, features=["mtls"]))
    report.record(CaseResult("t::b", Outcome.FAILED, features=["mtls", "authz"]))
    report.record(CaseResult("t::c", Outcome.UNSUPPORTED, features=["waypoint"], reason="unsupported: x"))
    report.record(CaseResult("t::d", Outcome.PASSED, features=["authz"]))
    report.record(CaseResult("t::e", Outcome.SKIPPED, features=["authz"], reason="known issue"))
    features = report.per_feature()
    assert features["mtls"]["result"] == "failed"
    assert features["waypoint"]["result"] == "unsupported"
    assert features["authz"]["failed"] == 1 and features["authz"]["passed"] == 1
    assert report.summary() == {
        "passed": 2,
        "failed": 1,
        "skipped": 1,
        "unsupported": 1,
        "xfailed": 0,
        "error": 0,
        "notRun": 0,
    }


def test_teardown_error_overrides_a_passed_call_and_durations_add_up():
    report = make_report()
    report.record(CaseResult("t::a", Outcome.PASSED, duration_s=1.0))
    report.record(CaseResult("t::a", Outcome.ERROR, duration_s=0.5, reason=""))
    assert report.results["t::a"].outcome is Outcome.ERROR
    assert report.results["t::a"].duration_s == 1.5


def test_written_report_is_versioned_and_reproducible(tmp_path):
    report = make_report(mode="sidecar", installer="sail", features="gie", kubeconfig="/home/u/.kube/cfg")
    report.record(CaseResult("t::a", Outcome.PASSED, features=["gie"], properties={"wait.call.0": "ok"}))
    report.status = RunStatus.INTERRUPTED
    path = report.write(tmp_path)
    assert path == tmp_path / REPORT_FILENAME
    data = yaml.safe_load(path.read_text())
    assert data["apiVersion"] == "meshproof.io/v1alpha1" and data["kind"] == "ConformanceReport"
    assert data["status"] == "interrupted"
    assert data["implementation"]["distribution"] == "openshift-service-mesh"
    assert data["tests"][0]["properties"] == {"wait.call.0": "ok"}
    argv = shlex.split(data["reproduce"]["command"])
    assert argv[:1] == ["pytest"]
    assert argv[argv.index("--mode") + 1] == "sidecar"
    assert argv[argv.index("--features") + 1] == "gie"
    assert not list(tmp_path.glob(".report-*")), "no temp file left behind"


def test_reproduce_command_round_trips_through_the_config():
    cfg = load_config({"context": ["a", "b"], "keep_cluster": True, "timeout_scale": "2"}, env={})
    argv = shlex.split(reproduce_command(cfg, Selection(markexpr="ambient")))
    assert argv[:3] == ["pytest", "-m", "ambient"]
    assert argv.count("--context") == 2 and "--keep-cluster" in argv
    assert argv[argv.index("--timeout-scale") + 1] == "2.0"
