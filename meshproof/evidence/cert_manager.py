"""Collectors for the istio-csr suite: the cert-manager issuer CA, istiod's own CA, CertificateRequests.

Only public certificates are read from Secrets (`tls.crt`, `ca-cert.pem`); private keys are never read,
returned or logged. Nothing here decides: meshproof.checks.ca_chain judges.
"""

from __future__ import annotations

from typing import Any

from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError
from meshproof.evidence.ztunnel_config import decode_base64_pem
from meshproof.kube_api import ObjectGetter, ObjectLister

CERT_MANAGER_API = "cert-manager.io/v1"
ISSUER_CA_SECRET = "istio-ca"  # manifests/istio-csr/ca-issuer.yaml.j2: the CA Issuer's secretName
ISTIOD_CA_SECRET = "istio-ca-secret"  # istiod's self-signed CA (absent when istiod signs nothing)
ISTIOD_CA_KEY = "ca-cert.pem"


def _secret_certificate(secret: dict[str, Any] | None, key: str, what: str) -> str | None:
    encoded = ((secret or {}).get("data") or {}).get(key)
    if not encoded:
        return None
    try:
        text = decode_base64_pem(encoded, f"{what} key {key}")
    except EvidenceParseError as exc:
        raise EvidenceCollectionError(str(exc)) from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise EvidenceCollectionError(f"{what} key {key} holds no PEM certificate")
    return text


def issuer_ca_pem(cluster: ObjectGetter, namespace: str, issuer: str = ISSUER_CA_SECRET) -> str:
    """The cert-manager CA Issuer's certificate (the first certificate of its Secret's tls.crt)."""
    issuer_obj = cluster.get(CERT_MANAGER_API, "Issuer", issuer, namespace)
    secret_name = (((issuer_obj or {}).get("spec") or {}).get("ca") or {}).get("secretName")
    if not secret_name:
        raise EvidenceCollectionError(
            f"cert-manager Issuer {namespace}/{issuer} is missing or not a CA Issuer"
        )
    secret = cluster.get("v1", "Secret", secret_name, namespace)
    pem = _secret_certificate(secret, "tls.crt", f"Secret {namespace}/{secret_name}")
    if pem is None:
        raise EvidenceCollectionError(f"Secret {namespace}/{secret_name} of Issuer {issuer} has no tls.crt")
    end = "-----END CERTIFICATE-----"
    return pem.split(end, 1)[0] + end + "\n"


def istiod_ca_pem(cluster: ObjectGetter, namespace: str) -> str | None:
    """istiod's own self-signed CA certificate, or None when istiod has none (the expected istio-csr case)."""
    secret = cluster.get("v1", "Secret", ISTIOD_CA_SECRET, namespace)
    return _secret_certificate(secret, ISTIOD_CA_KEY, f"Secret {namespace}/{ISTIOD_CA_SECRET}")


def certificate_requests(cluster: ObjectLister, namespace: str) -> list[dict[str, Any]]:
    return cluster.list(CERT_MANAGER_API, "CertificateRequest", namespace)
