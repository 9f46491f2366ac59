"""CertificateRequest evidence and the issuer-CA collectors of the istio-csr suite.

CertificateRequests have the shape istio-csr@v0.15.0 creates (pkg/server/server.go: generateName `istio-`,
annotation `istio.cert-manager.io/identities`, usages client+server auth, the configured issuerRef) with the
status cert-manager writes once signed (condition Ready=True). Chains are judged on real handshakes in
tests/local_real/test_istio_csr_tls.py.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from fixtures_data.shared_data import capture
from fixtures_data.spiffe_pki import Pki

from meshproof.checks.ca_chain import (
    certificate_requests_for,
    different_leaf,
    issued_by_cert_manager,
    requests_for,
    same_ca,
)
from meshproof.checks.identity import verify_workload_certificate
from meshproof.evidence.cert_manager import issuer_ca_pem, istiod_ca_pem
from meshproof.evidence.errors import EvidenceCollectionError

ID = "spiffe://cluster.local/ns/apps/sa/client"
# A real istiod's leaf and root (captures/ztunnel-1.27.9-istiod, see its README): an istiod-CA install.
ISTIOD_CAPTURE = "ztunnel-1.27.9-istiod"
ISTIOD_LEAF_ID = "spiffe://cluster.local/ns/zt-e2e/sa/client"
ISTIOD_LEAF_VALID_AT = dt.datetime(
    2026, 12, 3, tzinfo=dt.UTC
)  # leaf: 2026-12-02T17:05:23Z .. 12-03T17:07:23Z


def request(
    name: str,
    identities: str,
    *,
    issuer: str = "istio-ca",
    ready: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "creationTimestamp": "2026-01-01T12:05:00Z",
            "annotations": {"istio.cert-manager.io/identities": identities},
        },
        "spec": {
            "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
            "usages": ["client auth", "server auth"],
            "isCA": False,
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "Issued"}]
        },
    }


def test_signed_request_for_the_identity_passes() -> None:
    verdict = certificate_requests_for([request("istio-abcde", ID)], ID, issuer_name="istio-ca")
    assert verdict.ok and "istio-abcde" in verdict.reason


def test_a_new_request_is_one_not_seen_before() -> None:
    before = [request("istio-old", ID), request("istio-other", "spiffe://cluster.local/ns/apps/sa/server")]
    seen = requests_for(before, ID)
    assert seen == ["istio-old"]
    assert not certificate_requests_for(before, ID, issuer_name="istio-ca", excluding=seen)
    after = [*before, request("istio-new", ID)]
    verdict = certificate_requests_for(after, ID, issuer_name="istio-ca", excluding=seen)
    assert verdict.ok and "istio-new" in verdict.reason


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ([request("istio-a", "spiffe://cluster.local/ns/apps/sa/server")], "no CertificateRequest for"),
        ([request("istio-a", ID, issuer="other")], "names issuer 'other'"),
        ([request("istio-a", ID, ready=False)], "is not Ready"),
    ],
    ids=["other-identity", "other-issuer", "unsigned"],
)
def test_requests_that_do_not_prove_issuance_fail(requests: list[dict[str, Any]], fragment: str) -> None:
    verdict = certificate_requests_for(requests, ID, issuer_name="istio-ca")
    assert not verdict.ok and fragment in verdict.reason


def test_checks_never_raise_on_bad_input() -> None:
    assert not certificate_requests_for("x", ID, issuer_name="istio-ca")  # type: ignore[arg-type]
    assert not certificate_requests_for([None, 3], ID, issuer_name="istio-ca")  # type: ignore[list-item]
    assert not issued_by_cert_manager("not pem", ID, "not pem")
    assert not different_leaf("", b"")


class Secrets:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.objects.get((kind, name))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_issuer_ca_is_read_from_the_issuers_secret_and_never_its_key() -> None:
    pki = Pki()
    root = pki.root()
    issuer = pki.intermediate(root)
    cluster = Secrets(
        {
            ("Issuer", "istio-ca"): {"spec": {"ca": {"secretName": "istio-ca"}}},
            ("Secret", "istio-ca"): {"data": {"tls.crt": b64(issuer.pem + root.pem), "tls.key": b64("KEY")}},
        }
    )
    pem = issuer_ca_pem(cluster, "istio-system")
    assert pem.strip() == issuer.pem.strip() and "KEY" not in pem


def test_missing_issuer_and_absent_istiod_ca() -> None:
    with pytest.raises(EvidenceCollectionError, match="missing or not a CA Issuer"):
        issuer_ca_pem(Secrets({}), "istio-system")
    assert istiod_ca_pem(Secrets({}), "istio-system") is None
    broken = Secrets({("Secret", "istio-ca-secret"): {"data": {"ca-cert.pem": "@@@"}}})
    with pytest.raises(EvidenceCollectionError, match="not base64-encoded PEM"):
        istiod_ca_pem(broken, "istio-system")


def istiod_leaf_and_root() -> tuple[str, str]:
    return (
        capture(ISTIOD_CAPTURE, "leaf-client.pem").read_text(),
        capture(ISTIOD_CAPTURE, "root-from-ztunnel.pem").read_text(),
    )


def test_a_real_istiod_leaf_is_named_as_issued_by_istiod() -> None:
    leaf, root = istiod_leaf_and_root()
    at = ISTIOD_LEAF_VALID_AT
    # The accept side: checked with istiod's root as the mesh root, the real leaf chains to it.
    as_mesh_root = verify_workload_certificate(leaf, ISTIOD_LEAF_ID, root, at)
    assert as_mesh_root.ok and "chains to root 'O=cluster.local'" in as_mesh_root.reason
    assert issued_by_cert_manager(leaf, ISTIOD_LEAF_ID, root, at=at).ok
    # The reject side: against a cert-manager CA, with istiod's CA known, the leaf is named as istiod's.
    pki = Pki(now=at)
    cert_manager_ca = pki.intermediate(pki.root(), "istio-ca")
    verdict = issued_by_cert_manager(leaf, ISTIOD_LEAF_ID, cert_manager_ca.pem, istiod_ca_pem=root, at=at)
    assert not verdict.ok
    assert "not issued by the cert-manager CA: issued by istiod's own CA" in verdict.reason, verdict.reason
    # Without istiod's CA the check still rejects it, only less precisely.
    unknown = issued_by_cert_manager(leaf, ISTIOD_LEAF_ID, cert_manager_ca.pem, at=at)
    assert not unknown.ok and "istiod" not in unknown.reason


def test_published_root_names_an_istiod_leaf_by_its_spiffe_id() -> None:
    """Istio leaves have an empty subject: the message names the leaf by its URI SAN (one rendering,
    meshproof.checks.identity.certificate_name)."""
    leaf, root = istiod_leaf_and_root()
    assert same_ca(root, root, what="istio-ca-root-cert").ok
    verdict = same_ca(leaf, root, what="istio-ca-root-cert")
    assert not verdict.ok
    assert f"holds '{ISTIOD_LEAF_ID}', not the cert-manager CA 'O=cluster.local'" in verdict.reason
