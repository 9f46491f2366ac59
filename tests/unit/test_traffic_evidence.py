"""MeshEvidence (fixtures/traffic.py): which ztunnel it asks, what it retries, what it hands the checks.

Fakes stand in for the cluster and for istioctl; access logs and metrics are real ztunnel 1.27.9 output
(../shared/captures), certificate dumps have the format of output-formats §2.4. What this cannot prove:
how long evidence takes to appear on a cluster.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fixtures_data.ztunnel_captures as captured
import pytest
from fixtures_data.ztunnel_captures import log_text

import fixtures.traffic as traffic_fixtures
from fixtures.traffic import MeshEvidence
from meshproof.checks.ambient import PolicyRejection, ztunnel_access_log_identity
from meshproof.evidence.collect import Istioctl
from meshproof.wait import Timeouts, WaitTimeout, eventually
from meshproof.workloads import Workload, WorkloadClass

CLIENT = Workload(WorkloadClass.AMBIENT, "mp-run-ambient", "client")
CLIENT_ID = "spiffe://cluster.local/ns/mp-run-ambient/sa/client"
LEAF_PEM = "-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n"
ROOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n"


def cert_entry(pem: str) -> dict[str, str]:
    return {
        "pem": base64.b64encode(pem.encode()).decode(),
        "serialNumber": "211982630998812307766049853125917414237",
        "validFrom": "2026-11-26T05:12:44Z",
        "expirationTime": "2026-11-27T05:14:44Z",
    }


def certificates_json(state: str) -> str:
    available = state == "Available"
    return json.dumps(
        [
            {
                "identity": "spiffe://cluster.local/ns/mp-run-ambient/sa/server",
                "state": "Available",
                "certChain": [
                    cert_entry("-----BEGIN CERTIFICATE-----\nMIIBother\n-----END CERTIFICATE-----\n")
                ],
                "rootCerts": [cert_entry(ROOT_PEM)],
            },
            {
                "identity": CLIENT_ID,
                "state": state,
                "certChain": [cert_entry(LEAF_PEM)] if available else [],
                "rootCerts": [cert_entry(ROOT_PEM)] if available else [],
            },
        ],
        indent=4,
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str = ""


class FakeIstioctl:
    def __init__(self, outputs: Sequence[str]) -> None:
        self.outputs = list(outputs)
        self.commands: list[list[str]] = []

    def __call__(self, args: Sequence[str], *, timeout: float, check: bool = True) -> Ran:
        self.commands.append(list(args))
        return Ran(0, self.outputs.pop(0) if len(self.outputs) > 1 else self.outputs[0])


class FakeCluster:
    def __init__(self, log_text: str = "") -> None:
        self.log_text = log_text
        self.log_requests: list[tuple[str, str, int | None]] = []

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        if label_selector == "app=ztunnel":
            return [
                {
                    "metadata": {"name": f"ztunnel-{node}"},
                    "spec": {"nodeName": node},
                    "status": {"phase": "Running"},
                }
                for node in ("kind-control-plane", "kind-worker")
            ]
        return [
            {
                "metadata": {"name": "client-5d8f7c9b4-x2k9q", "namespace": namespace},
                "spec": {"nodeName": "kind-worker"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        ]

    def logs(
        self, pod: str, namespace: str, container: str | None = None, *, since_seconds: int | None = None
    ) -> str:
        self.log_requests.append((pod, namespace, since_seconds))
        return self.log_text


@pytest.fixture(autouse=True)
def instant_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]

    def fake_eventually(fn: Callable[[], Any], **kwargs: Any) -> Any:
        return eventually(fn, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s), **kwargs)

    monkeypatch.setattr(traffic_fixtures, "eventually", fake_eventually)


def evidence(
    cluster: FakeCluster, istioctl: FakeIstioctl | None, calls: list[str] | None = None
) -> MeshEvidence:
    def factory() -> Istioctl:
        if calls is not None:
            calls.append("istioctl")
        assert istioctl is not None, "istioctl was needed but the test said it is not installed"
        return Istioctl(run=istioctl)

    return MeshEvidence(cluster, factory, "istio-system", Timeouts.scaled(1.0))


def test_certificate_comes_from_the_ztunnel_on_the_workloads_node_once_available() -> None:
    istioctl = FakeIstioctl([certificates_json("Initializing"), certificates_json("Available")])
    chain = evidence(FakeCluster(), istioctl).ztunnel_certificate_chain(CLIENT, CLIENT_ID)
    assert chain == LEAF_PEM  # the client's leaf, not the server's entry before it
    assert len(istioctl.commands) == 2  # Initializing was retried
    assert istioctl.commands[0][:4] == [
        "istioctl",
        "ztunnel-config",
        "certificates",
        "ztunnel-kind-worker.istio-system",
    ]


def test_a_certificate_that_never_becomes_available_times_out_naming_the_identity() -> None:
    istioctl = FakeIstioctl([certificates_json("Unavailable: signing failed")])
    with pytest.raises(WaitTimeout, match=CLIENT_ID):
        evidence(FakeCluster(), istioctl).ztunnel_certificate_chain(CLIENT, CLIENT_ID)


def test_access_log_window_covers_only_this_tests_traffic_and_istioctl_is_not_needed() -> None:
    cluster = FakeCluster(log_text=log_text("node2"))
    calls: list[str] = []
    seen = evidence(cluster, None, calls)
    seen.require_access_log(
        "ztunnel-kind-worker",
        time.time(),
        lambda records: ztunnel_access_log_identity(records, captured.CLIENT),
        "the client's identity is logged",
    )
    ((pod, namespace, since),) = cluster.log_requests
    assert (pod, namespace) == ("ztunnel-kind-worker", "istio-system")
    assert since is not None and 5 <= since <= 10
    assert calls == []  # istioctl is resolved lazily: a log-only check does not need it installed


SERVER_POD = {"metadata": {"name": captured.SERVER_POD}, "spec": {"nodeName": "kind-worker"}}


def rejecting_evidence(monkeypatch: pytest.MonkeyPatch, log: str) -> tuple[MeshEvidence, list[str]]:
    """MeshEvidence over the destination ztunnel's real log, whose metrics are scraped twice: before
    the calls (the capture) and after (the same ztunnel after 20 repeats of each case)."""
    scrapes = [captured.metrics("node2"), captured.metrics("node2", after_repeat=True)]
    scraped: list[str] = []

    def scrape(self: MeshEvidence, pod: str) -> list[Any]:
        scraped.append(pod)
        return scrapes.pop(0)

    monkeypatch.setattr(MeshEvidence, "ztunnel_metrics", scrape)
    return evidence(FakeCluster(log_text=log), None), scraped


def test_ztunnel_rejects_needs_the_named_policy_for_this_client_and_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen, scraped = rejecting_evidence(monkeypatch, log_text("node2"))
    namespace, name = captured.DENY_BY_PRINCIPAL.split("/")

    with seen.ztunnel_rejects(
        SERVER_POD,
        PolicyRejection.denied_by(namespace, name),
        src_identity=captured.CLIENT,
        dst_identity=captured.SERVER,
    ):
        pass  # the test's denied calls run here
    assert scraped == ["ztunnel-kind-worker", "ztunnel-kind-worker"]  # baseline, then after the calls


def test_ztunnel_rejects_refuses_a_closed_port(monkeypatch: pytest.MonkeyPatch) -> None:
    closed_port_only = "\n".join(line for line in log_text("node2").splitlines() if "10.88.0.20:9090" in line)
    seen, _ = rejecting_evidence(monkeypatch, closed_port_only)
    namespace, name = captured.DENY_BY_PRINCIPAL.split("/")

    with (
        pytest.raises(WaitTimeout, match="policy rejections seen: none"),
        seen.ztunnel_rejects(
            SERVER_POD, PolicyRejection.denied_by(namespace, name), src_identity=captured.CLIENT
        ),
    ):
        pass


def test_through_waypoint_refuses_a_call_that_went_straight_to_the_server() -> None:
    client_pod = {"metadata": {"name": "client"}, "spec": {"nodeName": "kind-worker"}}
    seen = evidence(FakeCluster(log_text=log_text("node1")), None)

    with (
        pytest.raises(WaitTimeout, match="did not go through it"),
        seen.through_waypoint(client_pod, captured.CLIENT, "spiffe://cluster.local/ns/server-ns/sa/waypoint"),
    ):
        pass


def test_missing_identity_in_the_log_fails_with_the_checks_reason() -> None:
    cluster = FakeCluster(log_text="")
    with pytest.raises(WaitTimeout, match="no successful inbound 'connection complete' record"):
        evidence(cluster, None).require_access_log(
            "ztunnel-kind-worker", 0.0, lambda r: ztunnel_access_log_identity(r, CLIENT_ID), "identity logged"
        )
