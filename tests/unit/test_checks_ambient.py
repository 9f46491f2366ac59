"""Ambient checks over parsed ztunnel evidence (workloads, metrics, access logs) and policy status.

Inputs are the realistic samples in tests/fixtures_data/ run through the real parsers. Each check is
shown passing and failing. What this cannot prove: that a live ztunnel emits exactly these lines and
series for a given traffic pattern (the samples follow output-formats §2 and §4).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meshproof.checks.ambient import (
    hbone_for_workload,
    policy_rejection_logged,
    ztunnel_access_log_identity,
    ztunnel_access_log_plaintext,
    ztunnel_denied_connections,
    ztunnel_saw_mtls,
    ztunnel_saw_plaintext,
)
from meshproof.checks.policy import policy_condition_true, ztunnel_rejected_action
from meshproof.evidence.prometheus import MetricSample, parse_exposition
from meshproof.evidence.ztunnel_config import parse_workloads
from meshproof.evidence.ztunnel_logs import parse_access_log

DATA = Path(__file__).resolve().parents[1] / "fixtures_data"
CLIENT = "spiffe://cluster.local/ns/mp-ambient/sa/client"
ECHO = "spiffe://cluster.local/ns/mp-ambient/sa/echo"
STRICT = "istio-system/istio_converted_static_strict"


@pytest.fixture(scope="module")
def metrics() -> list[MetricSample]:
    return parse_exposition((DATA / "ztunnel_metrics.txt").read_text())


@pytest.fixture(scope="module")
def access_log() -> list[Any]:
    return parse_access_log((DATA / "ztunnel_access.log").read_text())


def test_hbone_for_workload() -> None:
    workloads = parse_workloads((DATA / "ztunnel_workloads.json").read_text())

    captured = hbone_for_workload(workloads, "echo-66b8f7d4c9-zt5lm", "mp-waypoint")
    assert captured.ok and "waypoint mp-waypoint/waypoint" in captured.reason
    not_captured = hbone_for_workload(workloads, "legacy-6c9b8d-qwert", "mp-outside")
    assert not not_captured.ok and "protocol TCP, not HBONE" in not_captured.reason
    missing = hbone_for_workload(workloads, "client-5d8f7c9b4-x2k9q", "other-ns")
    assert not missing.ok and "no workload other-ns/client" in missing.reason


def test_ztunnel_saw_mtls(metrics: list[MetricSample]) -> None:
    assert ztunnel_saw_mtls(metrics, CLIENT).ok
    assert ztunnel_saw_mtls(metrics, CLIENT, ECHO).ok
    wrong_dst = ztunnel_saw_mtls(metrics, CLIENT, "spiffe://cluster.local/ns/mp-ambient/sa/other")
    assert not wrong_dst.ok and "no new mTLS connections" in wrong_dst.reason
    assert not ztunnel_saw_mtls(metrics, "spiffe://cluster.local/ns/mp-outside/sa/default").ok


def test_ztunnel_saw_mtls_judges_only_growth_since_the_baseline(metrics: list[MetricSample]) -> None:
    # Same scrape twice: the counters did not move, so this test's traffic was not seen.
    unchanged = ztunnel_saw_mtls(metrics, CLIENT, baseline=metrics)
    assert not unchanged.ok and "baseline 7" in unchanged.reason

    grown = [replace(s, value=s.value + 2) for s in metrics]
    verdict = ztunnel_saw_mtls(grown, CLIENT, baseline=metrics)
    assert verdict.ok and verdict.reason.startswith("2 mTLS connections since the baseline")


def test_source_reporter_alone_does_not_prove_inbound_mtls(metrics: list[MetricSample]) -> None:
    only_source = [s for s in metrics if s.labels.get("reporter") == "source"]

    assert not ztunnel_saw_mtls(only_source, CLIENT).ok


def test_ztunnel_saw_plaintext(metrics: list[MetricSample]) -> None:
    assert ztunnel_saw_plaintext(metrics, ECHO).ok
    mtls_only = [s for s in metrics if s.labels.get("connection_security_policy") == "mutual_tls"]
    verdict = ztunnel_saw_plaintext(mtls_only, ECHO)
    assert not verdict.ok and "mutual_tls" in verdict.reason


def test_ztunnel_denied_connections(metrics: list[MetricSample]) -> None:
    assert ztunnel_denied_connections(metrics, ECHO, CLIENT).ok
    assert not ztunnel_denied_connections(metrics, ECHO, CLIENT, baseline=metrics).ok
    no_deny = [s for s in metrics if s.labels.get("response_flags") != "DENY"]
    assert not ztunnel_denied_connections(no_deny, ECHO).ok


def test_ztunnel_access_log_identity(access_log: list[Any]) -> None:
    assert ztunnel_access_log_identity(access_log, CLIENT).ok
    assert ztunnel_access_log_identity(access_log, CLIENT, ECHO, direction="outbound").ok
    verdict = ztunnel_access_log_identity(access_log, "spiffe://cluster.local/ns/mp-outside/sa/default")
    assert not verdict.ok and "src.identity seen" in verdict.reason
    only_errors = [r for r in access_log if r.error]
    assert not ztunnel_access_log_identity(only_errors, CLIENT).ok  # denied connections prove nothing


def test_ztunnel_access_log_plaintext(access_log: list[Any]) -> None:
    assert ztunnel_access_log_plaintext(access_log, "echo-7f6d9c-abcde").ok
    mtls_lines = [r for r in access_log if r.src_identity]
    assert not ztunnel_access_log_plaintext(mtls_lines, "echo-7f6d9c-abcde").ok


def test_policy_rejection_logged(access_log: list[Any]) -> None:
    assert policy_rejection_logged(access_log).ok
    assert policy_rejection_logged(access_log, none_allowed=True, src_identity=CLIENT).ok
    assert policy_rejection_logged(access_log, denied_by=STRICT, dst_workload="echo-7f6d9c-abcde").ok
    assert policy_rejection_logged(
        access_log, denied_by="mp-ambient/deny-outside"
    ).ok  # early deny, warn line
    missing = policy_rejection_logged(access_log, denied_by="mp-ambient/some-other-policy")
    assert not missing.ok and "policy rejections seen" in missing.reason
    assert not policy_rejection_logged(access_log, denied_by=STRICT, src_identity=CLIENT).ok
    successes = [r for r in access_log if r.error is None]
    assert not policy_rejection_logged(successes).ok
    with pytest.raises(ValueError):
        policy_rejection_logged(access_log, denied_by=STRICT, none_allowed=True)


def _policy(conditions: list[dict[str, str]], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "ext-authz", "namespace": "mp-ambient", "generation": generation},
        "spec": {"action": "CUSTOM", "provider": {"name": "ext-authz-grpc"}, "rules": [{}]},
        "status": {"conditions": conditions},
    }


CUSTOM_REJECTED = {
    "type": "ZtunnelAccepted",
    "status": "False",
    "reason": "UnsupportedValue",
    "message": "ztunnel does not support the CUSTOM action",
    "observedGeneration": "1",
}


def test_ztunnel_rejected_action() -> None:
    assert ztunnel_rejected_action(_policy([CUSTOM_REJECTED]), "CUSTOM").ok
    assert ztunnel_rejected_action(
        _policy([{**CUSTOM_REJECTED, "message": "ztunnel does not support the AUDIT action"}]), "audit"
    ).ok
    accepted = {
        "type": "ZtunnelAccepted",
        "status": "True",
        "reason": "Accepted",
        "message": "attached to ztunnel",
    }
    verdict = ztunnel_rejected_action(_policy([accepted]), "CUSTOM")
    assert not verdict.ok and "got ZtunnelAccepted=True" in verdict.reason
    assert not ztunnel_rejected_action(_policy([]), "CUSTOM").ok  # istiod has not written status yet
    stale = ztunnel_rejected_action(_policy([CUSTOM_REJECTED], generation=2), "CUSTOM")
    assert not stale.ok and "not reconciled" in stale.reason


def test_policy_condition_true() -> None:
    accepted = {
        "type": "ZtunnelAccepted",
        "status": "True",
        "reason": "Accepted",
        "message": "attached to ztunnel",
    }
    assert policy_condition_true(_policy([accepted]), "ZtunnelAccepted").ok
    http_dropped = {
        **accepted,
        "reason": "UnsupportedValue",
        "message": "ztunnel does not support HTTP attributes (found: methods). "
        "In ambient mode you must use a waypoint proxy to enforce HTTP rules.",
    }
    warned = policy_condition_true(_policy([http_dropped]), "ZtunnelAccepted")
    assert warned.ok and "(with warning)" in warned.reason
    assert not policy_condition_true(_policy([CUSTOM_REJECTED]), "ZtunnelAccepted").ok
    assert not policy_condition_true(_policy([accepted]), "WaypointAccepted").ok
