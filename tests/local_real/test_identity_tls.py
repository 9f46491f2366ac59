"""verify_workload_certificate on chains that crossed a real mutual-TLS handshake on loopback.

A recording server (Python ssl / OpenSSL, client certificate required) accepts the handshake and hands
over the chain the client actually sent; that chain is what the verifier judges. The recording server
trusts every CA of the scenario with partial chains and without time checks, so that it records rather
than judges; a second, strict server (mesh root only, default OpenSSL checks) gives OpenSSL's own verdict
to cross-check ours, and cryptography's PolicyBuilder gives a third opinion on the same chains.

What this cannot prove: that Istio's real certificates have these shapes (the PKI mimics Istio's, see
tests/fixtures_data/spiffe_pki.py), or what Envoy/ztunnel accept (they are not run here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from fixtures_data.mtls_handshake import Party, ServerView, handshake
from fixtures_data.spiffe_pki import Issued, Pki, pem_of

from meshproof.checks.identity import spiffe_id, verify_workload_certificate

pytestmark = pytest.mark.local_real

CLIENT_ID = spiffe_id("cluster.local", "demo", "client")
SERVER_ID = spiffe_id("cluster.local", "demo", "server")


@dataclass(frozen=True)
class Mesh:
    pki: Pki
    root: Issued
    intermediate: Issued
    server: Issued
    foreign_root: Issued
    foreign_intermediate: Issued


@dataclass(frozen=True)
class Presented:
    """What a client sends in its Certificate message: its chain PEM and private key."""

    chain_pem: str
    key_pem: str
    trust_anchors_pem: str  # what the recording server must trust to complete the handshake


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    pki = Pki()
    root = pki.root()
    intermediate = pki.intermediate(root)
    # A foreign CA with the same name as the mesh root: every Istio self-signed root is O=cluster.local.
    foreign_root = pki.root()
    return Mesh(
        pki=pki,
        root=root,
        intermediate=intermediate,
        server=pki.leaf(intermediate, [SERVER_ID]),
        foreign_root=foreign_root,
        foreign_intermediate=pki.intermediate(foreign_root),
    )


def _presented(mesh: Mesh, scenario: str) -> Presented:
    pki, now = mesh.pki, mesh.pki.now
    anchors = mesh.root.pem
    if scenario == "right chain":
        leaf = pki.leaf(mesh.intermediate, [CLIENT_ID])
        chain = pem_of(leaf, mesh.intermediate)
    elif scenario == "wrong SAN":
        leaf = pki.leaf(mesh.intermediate, [spiffe_id("cluster.local", "demo", "intruder")])
        chain = pem_of(leaf, mesh.intermediate)
    elif scenario == "expired leaf":
        leaf = pki.leaf(
            mesh.intermediate,
            [CLIENT_ID],
            not_before=now - dt.timedelta(hours=25),
            not_after=now - dt.timedelta(hours=1),
        )
        chain = pem_of(leaf, mesh.intermediate)
    elif scenario == "not-yet-valid leaf":
        leaf = pki.leaf(
            mesh.intermediate,
            [CLIENT_ID],
            not_before=now + dt.timedelta(hours=1),
            not_after=now + dt.timedelta(hours=25),
        )
        chain = pem_of(leaf, mesh.intermediate)
    elif scenario == "foreign root":
        leaf = pki.leaf(mesh.foreign_intermediate, [CLIENT_ID])
        chain = pem_of(leaf, mesh.foreign_intermediate)
        anchors = mesh.foreign_root.pem
    elif scenario == "missing intermediate":
        leaf = pki.leaf(mesh.intermediate, [CLIENT_ID])
        chain = leaf.pem
        anchors = mesh.intermediate.pem  # with partial chains the recording server can anchor here
    elif scenario == "CA leaf":
        leaf = pki.leaf(mesh.intermediate, [CLIENT_ID], ca=True)
        chain = pem_of(leaf, mesh.intermediate)
    else:
        raise AssertionError(f"unknown scenario {scenario}")
    return Presented(chain_pem=chain, key_pem=leaf.key_pem, trust_anchors_pem=anchors)


def _handshake(mesh: Mesh, presented: Presented, tmp_path: Path, *, recording: bool) -> ServerView:
    """One mutual-TLS handshake on 127.0.0.1; the server returns what it saw."""
    return handshake(
        Party(pem_of(mesh.server, mesh.intermediate), mesh.server.key_pem),
        Party(presented.chain_pem, presented.key_pem),
        presented.trust_anchors_pem if recording else mesh.root.pem,
        tmp_path,
        partial_chain=recording,
        record_only=recording,
        client_trust_pem=mesh.root.pem,
    )


SCENARIOS = {
    # scenario: words the verdict's reason must contain
    "wrong SAN": "URI SAN is spiffe://cluster.local/ns/demo/sa/intruder, expected " + CLIENT_ID,
    "expired leaf": "expired",
    "not-yet-valid leaf": "not yet valid",
    "foreign root": "foreign root",
    "missing intermediate": "missing intermediate",
    "CA leaf": "leaf is a CA certificate",
}


def test_right_chain_received_over_mtls_is_accepted(mesh: Mesh, tmp_path: Path) -> None:
    view = _handshake(mesh, _presented(mesh, "right chain"), tmp_path, recording=True)
    assert view.accepted, view.error
    assert view.peer_chain_pem.count("BEGIN CERTIFICATE") == 2  # leaf + intermediate, as sent

    verdict = verify_workload_certificate(view.peer_chain_pem, CLIENT_ID, mesh.root.pem)

    assert verdict.ok, verdict.reason
    assert "through 1 intermediate" in verdict.reason


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_bad_chain_received_over_mtls_is_rejected_with_reason(
    mesh: Mesh, tmp_path: Path, scenario: str
) -> None:
    view = _handshake(mesh, _presented(mesh, scenario), tmp_path, recording=True)
    assert view.accepted, f"recording server must accept to record the chain: {view.error}"

    verdict = verify_workload_certificate(view.peer_chain_pem, CLIENT_ID, mesh.root.pem)

    assert not verdict.ok
    assert SCENARIOS[scenario] in verdict.reason, verdict.reason


def test_server_chain_received_by_client_is_checked_too(mesh: Mesh) -> None:
    """The other direction of the same mTLS: the server's chain identifies the server, not the client."""
    chain = pem_of(mesh.server, mesh.intermediate)

    assert verify_workload_certificate(chain, SERVER_ID, mesh.root.pem).ok
    wrong = verify_workload_certificate(chain, CLIENT_ID, mesh.root.pem)
    assert not wrong.ok and "expected " + CLIENT_ID in wrong.reason


# OpenSSL checks chain and time but neither the SPIFFE id nor (for a client leaf) CA:TRUE, so the
# cross-check covers the chain/time scenarios; wrong SAN and CA leaf are ours alone.
CHAIN_AND_TIME = ["right chain", "expired leaf", "not-yet-valid leaf", "foreign root", "missing intermediate"]


@pytest.mark.parametrize("scenario", CHAIN_AND_TIME)
def test_verdict_agrees_with_openssl_strict_handshake(mesh: Mesh, tmp_path: Path, scenario: str) -> None:
    presented = _presented(mesh, scenario)
    strict = _handshake(mesh, presented, tmp_path, recording=False)

    ours = verify_workload_certificate(presented.chain_pem, CLIENT_ID, mesh.root.pem)

    assert ours.ok == strict.accepted, f"ours: {ours.reason}; OpenSSL: {strict.error or 'accepted'}"


@pytest.mark.parametrize("scenario", CHAIN_AND_TIME)
def test_verdict_agrees_with_cryptography_policybuilder(mesh: Mesh, scenario: str) -> None:
    presented = _presented(mesh, scenario)
    certs = x509.load_pem_x509_certificates(presented.chain_pem.encode())
    verifier = PolicyBuilder().store(Store([mesh.root.cert])).time(mesh.pki.now).build_client_verifier()
    try:
        verifier.verify(certs[0], certs[1:])
        policybuilder_accepts = True
    except Exception:  # VerificationError is the documented failure; any failure means "rejects"
        policybuilder_accepts = False

    ours = verify_workload_certificate(presented.chain_pem, CLIENT_ID, mesh.root.pem, at=mesh.pki.now)

    assert ours.ok == policybuilder_accepts, ours.reason
