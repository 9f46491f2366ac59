"""The istio-csr chain checks on chains that crossed a real mutual-TLS handshake on loopback.

The hierarchy is cert-manager-shaped (istio-facts §6.1, §6.3): a root, the CA Issuer's certificate below it
(`CN=istio-ca`, `O=cluster.local, O=cert-manager`, the Issuer istio-csr signs with), and a workload leaf with
one SPIFFE URI SAN. Beside it, istiod's own self-signed CA (`O=cluster.local`, as istiod makes it) and a
foreign hierarchy with the very same names. A server that trusts only the issuer CA (OpenSSL, partial chain)
gives OpenSSL's verdict; a recording server hands over the chain the client really sent, which the checks
judge.

What this cannot prove: that istio-csr in a cluster issues these shapes (the conformance suite reads the
real chains), or what Envoy/ztunnel accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from fixtures_data.mtls_handshake import Party, handshake
from fixtures_data.spiffe_pki import Issued, Pki, pem_of

from meshproof.checks.ca_chain import different_leaf, issued_by_cert_manager, same_ca
from meshproof.checks.identity import spiffe_id

pytestmark = pytest.mark.local_real

CLIENT_ID = spiffe_id("cluster.local", "apps", "client")
SERVER_ID = spiffe_id("cluster.local", "apps", "server")
ISSUER_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cert-manager"),
        x509.NameAttribute(NameOID.COMMON_NAME, "istio-ca"),
    ]
)
ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshproof cert-manager root")])


@dataclass(frozen=True)
class Hierarchy:
    root: Issued
    issuer: Issued  # the cert-manager CA Issuer's certificate


@dataclass(frozen=True)
class World:
    pki: Pki
    cert_manager: Hierarchy
    foreign: Hierarchy  # same names, different keys
    istiod_root: Issued  # istiod's self-signed CA


def hierarchy(pki: Pki) -> Hierarchy:
    root = pki.root(ROOT_NAME)
    return Hierarchy(root=root, issuer=pki.intermediate(root, subject=ISSUER_NAME))


@pytest.fixture(scope="module")
def world() -> World:
    pki = Pki()
    return World(pki=pki, cert_manager=hierarchy(pki), foreign=hierarchy(pki), istiod_root=pki.root())


def server_party(world: World) -> Party:
    leaf = world.pki.leaf(world.cert_manager.issuer, [SERVER_ID])
    return Party(pem_of(leaf, world.cert_manager.issuer), leaf.key_pem)


def client_party(world: World, issuer: Issued, *, with_issuer: bool = True) -> tuple[Party, Issued]:
    leaf = world.pki.leaf(issuer, [CLIENT_ID])
    chain = pem_of(leaf, issuer) if with_issuer else leaf.pem
    return Party(chain, leaf.key_pem), leaf


def test_cert_manager_leaf_over_mtls_is_issued_by_cert_manager(world: World, tmp_path: Path) -> None:
    client, _ = client_party(world, world.cert_manager.issuer)
    issuer_pem = world.cert_manager.issuer.pem
    view = handshake(server_party(world), client, issuer_pem, tmp_path, partial_chain=True)
    assert view.accepted, f"OpenSSL, trusting only the cert-manager issuer CA, refused: {view.error}"

    verdict = issued_by_cert_manager(
        view.peer_chain_pem, CLIENT_ID, issuer_pem, istiod_ca_pem=world.istiod_root.pem
    )
    assert verdict.ok, verdict.reason
    assert "issued by the cert-manager CA 'CN=istio-ca,O=cert-manager,O=cluster.local'" in verdict.reason
    # The same real chain, judged for another identity, fails: the pass is about this workload.
    assert not issued_by_cert_manager(view.peer_chain_pem, SERVER_ID, issuer_pem)


def test_foreign_root_with_the_same_names_fails(world: World, tmp_path: Path) -> None:
    client, _ = client_party(world, world.foreign.issuer)
    strict = handshake(
        server_party(world), client, world.cert_manager.issuer.pem, tmp_path, partial_chain=True
    )
    assert not strict.accepted, "OpenSSL accepted a foreign chain"
    recorded = handshake(server_party(world), client, world.foreign.issuer.pem, tmp_path, partial_chain=True)
    assert recorded.accepted, recorded.error

    verdict = issued_by_cert_manager(recorded.peer_chain_pem, CLIENT_ID, world.cert_manager.issuer.pem)
    assert not verdict.ok
    assert "not issued by the cert-manager CA" in verdict.reason and "foreign" in verdict.reason


def test_istiod_self_signed_chain_fails_issued_by_cert_manager(world: World, tmp_path: Path) -> None:
    """A plain install: istiod's own CA signs the leaf directly."""
    client, _ = client_party(world, world.istiod_root, with_issuer=False)
    strict = handshake(
        server_party(world), client, world.cert_manager.issuer.pem, tmp_path, partial_chain=True
    )
    assert not strict.accepted, "OpenSSL accepted an istiod-signed leaf against the cert-manager CA"
    recorded = handshake(server_party(world), client, world.istiod_root.pem, tmp_path)
    assert recorded.accepted, recorded.error

    verdict = issued_by_cert_manager(
        recorded.peer_chain_pem, CLIENT_ID, world.cert_manager.issuer.pem, istiod_ca_pem=world.istiod_root.pem
    )
    assert not verdict.ok and "not issued by the cert-manager CA" in verdict.reason


def test_a_leaf_that_also_chains_to_istiods_ca_fails(world: World, tmp_path: Path) -> None:
    """istiod holding the cert-manager CA as its own (a plug-in `cacerts`) signs leaves istio-csr did not:
    the chain alone cannot tell them apart, so a shared CA is itself a failure."""
    client, _ = client_party(world, world.cert_manager.issuer)
    view = handshake(server_party(world), client, world.cert_manager.issuer.pem, tmp_path, partial_chain=True)
    verdict = issued_by_cert_manager(
        view.peer_chain_pem,
        CLIENT_ID,
        world.cert_manager.issuer.pem,
        istiod_ca_pem=world.cert_manager.issuer.pem,
    )
    assert not verdict.ok and "also chains to istiod's own CA" in verdict.reason


def test_published_root_is_compared_with_the_issuer_ca(world: World) -> None:
    issuer = world.cert_manager.issuer.pem
    assert same_ca(issuer + world.cert_manager.root.pem, issuer, what="istio-ca-root-cert").ok
    verdict = same_ca(world.istiod_root.pem, issuer, what="istio-ca-root-cert")
    assert not verdict.ok and "not the cert-manager CA" in verdict.reason


def test_a_reissued_leaf_is_told_apart(world: World) -> None:
    _, first = client_party(world, world.cert_manager.issuer)
    _, second = client_party(world, world.cert_manager.issuer)
    assert different_leaf(first.pem, second.pem).ok
    assert not different_leaf(first.pem, first.pem).ok
