"""Ambient checks over real ztunnel 1.27.9 output (../shared/captures via fixtures_data) and policy status.

Every check is run on the capture of the case it must accept and on the captures of the cases it must
reject: a deny by another policy, the port with nothing listening, plaintext refused under STRICT, the
source side's view. What this cannot prove: ztunnel's output through a waypoint (the captures have
none) and timing on a real cluster.
"""

from __future__ import annotations

from typing import Any

import pytest
from fixtures_data.ztunnel_captures import (
    CLIENT,
    CLIENT_IP,
    DENY_BY_NAMESPACE,
    DENY_BY_PRINCIPAL,
    OUTSIDER_IP,
    RESTRICTED,
    RESTRICTED_POD,
    SERVER,
    SERVER_POD,
    STRICT,
    access_records,
    hbone_port,
    istiod_workloads_json,
    metrics,
)

from meshproof.checks.ambient import (
    PolicyRejection,
    hbone_for_workload,
    policy_rejection_logged,
    ztunnel_access_log_identity,
    ztunnel_access_log_plaintext,
    ztunnel_denied_connections,
    ztunnel_routed_via_waypoint,
    ztunnel_saw_mtls,
    ztunnel_saw_plaintext,
)
from meshproof.checks.policy import policy_condition_true, ztunnel_rejected_action
from meshproof.evidence.prometheus import MetricSample
from meshproof.evidence.ztunnel_config import parse_workloads
from meshproof.evidence.ztunnel_logs import AccessLogRecord

LOG_FORMATS = ["plain", "json"]


@pytest.fixture(scope="module")
def destination() -> list[MetricSample]:
    return metrics("node2")


@pytest.fixture(scope="module", params=LOG_FORMATS)
def inbound(request: pytest.FixtureRequest) -> list[AccessLogRecord]:
    """The destination ztunnel's records (node2), in each log format."""
    return access_records("node2", request.param)


def on_port(records: list[AccessLogRecord], port: str) -> list[AccessLogRecord]:
    return [r for r in records if hbone_port(r) == port]


def test_hbone_for_workload_on_istiods_workloads() -> None:
    workloads = parse_workloads(istiod_workloads_json())

    captured = hbone_for_workload(workloads, "server-969b98544-9jgkw", "zt-e2e")
    assert captured.ok and "is HBONE on node" in captured.reason
    not_captured = hbone_for_workload(workloads, "ztunnel-898ph", "istio-system")  # not enrolled: TCP
    assert not not_captured.ok and "protocol TCP, not HBONE" in not_captured.reason
    missing = hbone_for_workload(workloads, "server-969b98544-9jgkw", "other-ns")
    assert not missing.ok and "no workload other-ns/server" in missing.reason


def test_ztunnel_saw_mtls(destination: list[MetricSample]) -> None:
    assert ztunnel_saw_mtls(destination, CLIENT).ok
    assert ztunnel_saw_mtls(destination, CLIENT, SERVER).ok
    wrong_dst = ztunnel_saw_mtls(destination, CLIENT, "spiffe://cluster.local/ns/server-ns/sa/other")
    assert not wrong_dst.ok and "no new mTLS connections" in wrong_dst.reason
    assert not ztunnel_saw_mtls(destination, "spiffe://cluster.local/ns/elsewhere/sa/default").ok


def test_ztunnel_saw_mtls_judges_only_growth_since_the_baseline(destination: list[MetricSample]) -> None:
    unchanged = ztunnel_saw_mtls(destination, CLIENT, SERVER, baseline=destination)
    assert not unchanged.ok and "baseline 10" in unchanged.reason

    after_repeats = metrics("node2", after_repeat=True)  # the same ztunnel after 20 repeats of each case
    verdict = ztunnel_saw_mtls(after_repeats, CLIENT, SERVER, baseline=destination)
    assert verdict.ok and "since the baseline (10 before)" in verdict.reason


def test_source_reporter_alone_does_not_prove_inbound_mtls() -> None:
    source_side = metrics("node1")  # the client's ztunnel reports only reporter="source"

    assert not ztunnel_saw_mtls(source_side, CLIENT, SERVER).ok


def test_plaintext_counter_proves_an_attempt_even_when_strict_refused_it(
    destination: list[MetricSample], inbound: list[AccessLogRecord]
) -> None:
    # Every plaintext connection in the capture was refused by STRICT (cases 07/08), yet the opened
    # counter grew: the counter alone proves only that plaintext reached ztunnel.
    assert ztunnel_saw_plaintext(destination, SERVER).ok
    # Acceptance needs a completed record without identities; the STRICT capture has none.
    refused = ztunnel_access_log_plaintext(inbound, SERVER_POD, src_ip=OUTSIDER_IP)
    assert not refused.ok and "istio_converted_static_strict" in refused.reason
    assert not ztunnel_access_log_plaintext(inbound, SERVER_POD).ok
    # The note names only the given client's rejections: the mesh client's mTLS calls were never refused,
    # so the outsider's STRICT refusals are not reported as its own.
    from_client = ztunnel_access_log_plaintext(inbound, SERVER_POD, src_ip=CLIENT_IP)
    assert not from_client.ok and "from 10.88.0.10" in from_client.reason
    assert "rejected plaintext attempts" not in from_client.reason, from_client.reason
    mtls_only = [s for s in destination if s.labels.get("connection_security_policy") == "mutual_tls"]
    verdict = ztunnel_saw_plaintext(mtls_only, SERVER)
    assert not verdict.ok and "mutual_tls" in verdict.reason


def test_plaintext_records_carry_no_identity(inbound: list[AccessLogRecord]) -> None:
    plaintext = [r for r in inbound if r.src_ip == OUTSIDER_IP]
    assert plaintext and all(r.src_identity is None and r.dst_identity is None for r in plaintext)
    assert all(r.src_identity == CLIENT for r in inbound if r.src_ip == CLIENT_IP)


def test_ztunnel_denied_connections(destination: list[MetricSample]) -> None:
    assert ztunnel_denied_connections(destination, SERVER, CLIENT).ok
    assert ztunnel_denied_connections(destination, SERVER, "unknown").ok  # plaintext refused by STRICT
    assert ztunnel_denied_connections(destination, RESTRICTED, CLIENT).ok  # the ALLOW miss
    assert not ztunnel_denied_connections(destination, SERVER, CLIENT, baseline=destination).ok
    no_deny = [s for s in destination if s.labels.get("response_flags") != "DENY"]
    assert not ztunnel_denied_connections(no_deny, SERVER).ok
    # The closed port (case 06) is counted with response_flags="CONNECT", never as a DENY.
    refused = [s for s in destination if s.labels.get("response_flags") == "CONNECT"]
    assert refused and not ztunnel_denied_connections(refused, SERVER, CLIENT).ok


def test_deny_counter_is_only_on_the_destination_side() -> None:
    assert not ztunnel_denied_connections(metrics("node1"), SERVER, CLIENT).ok


def test_ztunnel_access_log_identity(inbound: list[AccessLogRecord]) -> None:
    assert ztunnel_access_log_identity(inbound, CLIENT, SERVER).ok
    assert ztunnel_access_log_identity(access_records("node1"), CLIENT, SERVER, direction="outbound").ok
    verdict = ztunnel_access_log_identity(inbound, "spiffe://cluster.local/ns/elsewhere/sa/default")
    assert not verdict.ok and "src.identity seen" in verdict.reason
    only_errors = [r for r in inbound if r.error]
    assert not ztunnel_access_log_identity(only_errors, CLIENT).ok  # denied connections prove nothing


@pytest.mark.parametrize(
    ("port", "policy"), [("8081", DENY_BY_PRINCIPAL), ("8082", DENY_BY_NAMESPACE)], ids=["principal", "ns"]
)
def test_deny_is_attributed_to_the_policy_that_matched(
    inbound: list[AccessLogRecord], port: str, policy: str
) -> None:
    records = on_port(inbound, port)

    verdict = policy_rejection_logged(records, denied_by=policy, src_identity=CLIENT, dst_workload=SERVER_POD)
    assert verdict.ok and policy in verdict.reason
    namespace, name = policy.split("/")
    assert policy_rejection_logged(records, rejection=PolicyRejection.denied_by(namespace, name)).ok


def test_a_deny_by_another_policy_does_not_pass_for_the_named_one(inbound: list[AccessLogRecord]) -> None:
    by_namespace = on_port(inbound, "8082")

    other = policy_rejection_logged(by_namespace, denied_by=DENY_BY_PRINCIPAL, src_identity=CLIENT)
    assert not other.ok and DENY_BY_NAMESPACE in other.reason
    # A policy whose name is a prefix of the one that matched is another policy.
    assert not policy_rejection_logged(on_port(inbound, "8081"), denied_by="server-ns/deny-client").ok
    assert not policy_rejection_logged(by_namespace, none_allowed=True).ok


def test_the_closed_port_does_not_pass_as_a_policy_deny(inbound: list[AccessLogRecord]) -> None:
    no_listener = on_port(inbound, "9090")  # case 06: the client saw the same close as for a deny
    assert no_listener and all(r.level == "error" for r in no_listener)

    for verdict in (
        policy_rejection_logged(no_listener, denied_by=DENY_BY_PRINCIPAL),
        policy_rejection_logged(no_listener, none_allowed=True),
        policy_rejection_logged(no_listener, denied_by=STRICT),
    ):
        assert not verdict.ok and "policy rejections seen: none" in verdict.reason


def test_allow_miss_is_attributed_to_the_server_that_has_the_allow(inbound: list[AccessLogRecord]) -> None:
    verdict = policy_rejection_logged(
        inbound, none_allowed=True, src_identity=CLIENT, dst_workload=RESTRICTED_POD
    )
    assert verdict.ok
    assert not policy_rejection_logged(inbound, none_allowed=True, dst_workload=SERVER_POD).ok


def test_strict_refusal_is_attributed_to_the_plaintext_client(inbound: list[AccessLogRecord]) -> None:
    strict = PolicyRejection.strict_mtls("istio-system")
    assert strict.policy == STRICT

    assert policy_rejection_logged(inbound, rejection=strict, src_ip=OUTSIDER_IP, dst_workload=SERVER_POD).ok
    assert not policy_rejection_logged(inbound, rejection=strict, src_ip=CLIENT_IP).ok
    assert not policy_rejection_logged(inbound, rejection=strict, src_identity=CLIENT).ok
    assert not policy_rejection_logged(inbound, rejection=PolicyRejection.strict_mtls("istio-other")).ok


def test_the_source_side_never_attributes_a_deny() -> None:
    source = access_records("node1")  # what the client's ztunnel logged for the same denies: 401
    assert any(r.error == "http status: 401 Unauthorized" for r in source)

    assert not policy_rejection_logged(source, denied_by=DENY_BY_PRINCIPAL).ok
    assert not policy_rejection_logged(source, none_allowed=True).ok


def test_a_rejection_must_be_named() -> None:
    records = access_records("node2")
    with pytest.raises(ValueError, match="name the rejection"):
        policy_rejection_logged(records)
    with pytest.raises(ValueError, match="name the rejection"):
        policy_rejection_logged(records, denied_by=STRICT, none_allowed=True)
    with pytest.raises(ValueError):
        PolicyRejection.denied_by("server-ns", "")


def test_routed_via_waypoint_reads_the_hbone_peer_of_the_clients_outbound_record() -> None:
    source = access_records("node1")
    waypoint = "spiffe://cluster.local/ns/server-ns/sa/waypoint"

    # Direct pod-to-pod calls: the client's ztunnel names the server as its HBONE peer, not a waypoint.
    direct = ztunnel_routed_via_waypoint(source, CLIENT, waypoint)
    assert not direct.ok and SERVER in direct.reason
    # The same reading names the peer it did connect to.
    assert ztunnel_routed_via_waypoint(source, CLIENT, SERVER).ok
    # Inbound records (the destination's view) never count.
    assert not ztunnel_routed_via_waypoint(access_records("node2"), CLIENT, SERVER).ok


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
