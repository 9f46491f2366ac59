"""Verdicts for "the mesh CA is cert-manager" (istio-csr, istio-facts §6.3).

A workload leaf is issued by cert-manager when it chains to the cert-manager issuer's CA certificate (read
from the cluster: the issuer's Secret), carries the workload's SPIFFE id, and does not chain to istiod's own
self-signed CA (`istio-ca-secret`), which must be absent or unused. istio-csr records each signing as a
CertificateRequest annotated `istio.cert-manager.io/identities: <spiffe id>` (istio-csr@v0.15.0
pkg/server/server.go) in its cert-manager namespace.

Pure functions over PEM text and API objects; they never raise on bad input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from meshproof.checks.identity import certificate_name, load_certificates, verify_workload_certificate
from meshproof.checks.verdict import Verdict

IDENTITIES_ANNOTATION = "istio.cert-manager.io/identities"


def issued_by_cert_manager(
    chain_pem: str | bytes,
    expected_spiffe_id: str,
    issuer_ca_pem: str | bytes,
    *,
    istiod_ca_pem: str | bytes | None = None,
    at: dt.datetime | None = None,
) -> Verdict:
    """Pass when the chain's leaf is `expected_spiffe_id`, chains to the cert-manager issuer CA, and (when
    istiod's own CA is given) does not also chain to istiod's CA. A leaf that chains to istiod's CA only is
    named as issued by istiod."""
    chained = verify_workload_certificate(chain_pem, expected_spiffe_id, issuer_ca_pem, at)
    by_istiod = (
        verify_workload_certificate(chain_pem, expected_spiffe_id, istiod_ca_pem, at)
        if istiod_ca_pem
        else None
    )
    if not chained.ok:
        if by_istiod is not None and by_istiod.ok:
            return Verdict.failed(
                f"not issued by the cert-manager CA: issued by istiod's own CA ({by_istiod.reason}); "
                f"against the cert-manager CA: {chained.reason}"
            )
        return Verdict.failed(f"not issued by the cert-manager CA: {chained.reason}")
    if by_istiod is not None and by_istiod.ok:
        return Verdict.failed(f"the leaf also chains to istiod's own CA: {by_istiod.reason}")
    issuer = _subject_of(issuer_ca_pem)
    return Verdict.passed(f"issued by the cert-manager CA {issuer}: {chained.reason}")


def same_ca(published_pem: str | bytes, issuer_ca_pem: str | bytes, *, what: str) -> Verdict:
    """Pass when `what` (e.g. the istio-ca-root-cert ConfigMap) holds the issuer CA certificate."""
    published = load_certificates(published_pem)
    issuer = load_certificates(issuer_ca_pem)
    if not issuer:
        return Verdict.failed("the cert-manager issuer CA is not a PEM certificate")
    if not published:
        return Verdict.failed(f"{what} holds no PEM certificate")
    if any(cert == issuer[0] for cert in published):
        return Verdict.passed(f"{what} holds the cert-manager CA {certificate_name(issuer[0])}")
    names = ", ".join(certificate_name(c) for c in published)
    return Verdict.failed(f"{what} holds {names}, not the cert-manager CA {certificate_name(issuer[0])}")


def certificate_requests_for(
    requests: Sequence[Mapping[str, Any]],
    identity: str,
    *,
    issuer_name: str,
    excluding: Collection[str] = (),
) -> Verdict:
    """Pass when a CertificateRequest for `identity` (annotation `istio.cert-manager.io/identities`), other
    than those named in `excluding` (the ones seen before a restart), names `issuer_name` and is Ready.

    Requests are told apart by name, not by creation time: the cluster's clock is not the test's."""
    if not isinstance(requests, Sequence) or isinstance(requests, str | bytes):
        return Verdict.failed(f"expected a list of CertificateRequests, got {type(requests).__name__}")
    mine = [
        r
        for r in requests
        if isinstance(r, Mapping) and identity in _identities(r) and request_name(r) not in excluding
    ]
    if not mine:
        new = f" besides the {len(excluding)} seen before" if excluding else ""
        return Verdict.failed(f"no CertificateRequest for {identity}{new} among {len(requests)} request(s)")
    problems: list[str] = []
    for request in mine:
        name = (request.get("metadata") or {}).get("name", "?")
        issuer = ((request.get("spec") or {}).get("issuerRef") or {}).get("name")
        if issuer != issuer_name:
            problems.append(f"{name} names issuer {issuer!r}, want {issuer_name!r}")
        elif not _ready(request):
            problems.append(f"{name} is not Ready (not signed)")
        else:
            return Verdict.passed(f"CertificateRequest {name} for {identity} signed by issuer {issuer_name}")
    return Verdict.failed("; ".join(problems))


def different_leaf(before_pem: str | bytes, after_pem: str | bytes) -> Verdict:
    """Pass when the two chains start with different leaves (a new key and serial: a new issuance)."""
    before, after = load_certificates(before_pem), load_certificates(after_pem)
    if not before or not after:
        return Verdict.failed("both chains must hold a PEM certificate")
    old, new = before[0], after[0]
    if old.serial_number == new.serial_number or old.public_key() == new.public_key():
        return Verdict.failed(f"the leaf did not change (serial {old.serial_number:x})")
    return Verdict.passed(f"new leaf serial {new.serial_number:x} replaces {old.serial_number:x}")


def _identities(request: Mapping[str, Any]) -> list[str]:
    annotations = (request.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(IDENTITIES_ANNOTATION) if isinstance(annotations, Mapping) else None
    return [part.strip() for part in value.split(",")] if isinstance(value, str) else []


def request_name(request: Mapping[str, Any]) -> str:
    return str((request.get("metadata") or {}).get("name", ""))


def requests_for(requests: Sequence[Mapping[str, Any]], identity: str) -> list[str]:
    """The names of the CertificateRequests for `identity` (to exclude them after a restart)."""
    return [request_name(r) for r in requests if isinstance(r, Mapping) and identity in _identities(r)]


def _ready(request: Mapping[str, Any]) -> bool:
    conditions = (request.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def _subject_of(pem: object) -> str:
    certs = load_certificates(pem)
    return certificate_name(certs[0]) if certs else "<unreadable>"
