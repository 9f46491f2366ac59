"""Parsers for `istioctl ztunnel-config workloads|certificates -o json` (Istio 1.27).

Formats: output-formats §2.2 (workloads) and §2.4 (certificates). istioctl re-marshals ztunnel's
config_dump through its own Go structs, so the keys are exactly those listed there. Parsers only read;
they never judge (a TCP workload is data here, not a failure).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshproof.evidence.errors import EvidenceParseError


@dataclass(frozen=True)
class ZtunnelWorkload:
    """One workload as ztunnel knows it (one element of `ztunnel-config workloads -o json`)."""

    uid: str
    name: str
    namespace: str
    protocol: str  # "HBONE" (captured by ambient) or "TCP"
    service_account: str
    node: str
    trust_domain: str
    workload_ips: tuple[str, ...]
    waypoint: str | None  # "<namespace>/<hostname>" of the waypoint, None when not set
    status: str  # "Healthy" | "Unhealthy"
    workload_name: str
    workload_type: str
    cluster_id: str
    network: str | None
    authorization_policies: tuple[str, ...]  # "<ns>/<name>", incl. istio-system/istio_converted_static_strict

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True)
class CertificateEntry:
    """One certificate of a ztunnel certificate dump, PEM already decoded from its base64 wrapping."""

    pem: str
    serial_number: str  # decimal, as ztunnel prints it
    valid_from: str  # RFC 3339
    expiration_time: str  # RFC 3339


@dataclass(frozen=True)
class ZtunnelCertificate:
    """The certificates a ztunnel holds for one identity (one element of `certificates -o json`)."""

    identity: str
    state: str  # "Available" | "Initializing" | "Unavailable: <error>"
    chain: tuple[CertificateEntry, ...]  # leaf first, then intermediates
    roots: tuple[CertificateEntry, ...]

    @property
    def chain_pem(self) -> str:
        return "".join(_with_newline(entry.pem) for entry in self.chain)

    @property
    def roots_pem(self) -> str:
        return "".join(_with_newline(entry.pem) for entry in self.roots)


def parse_workloads(text: str) -> list[ZtunnelWorkload]:
    """Parse `istioctl ztunnel-config workloads -o json` (a JSON array; `[]` when nothing matches)."""
    items = _json_array(text, "ztunnel-config workloads")
    return [_workload(item, index) for index, item in enumerate(items)]


def parse_certificates(text: str) -> list[ZtunnelCertificate]:
    """Parse `istioctl ztunnel-config certificates -o json`; `pem` fields are base64 of PEM (§2.4)."""
    items = _json_array(text, "ztunnel-config certificates")
    certificates: list[ZtunnelCertificate] = []
    for index, item in enumerate(items):
        where = f"ztunnel-config certificates[{index}]"
        entry = _mapping(item, where)
        certificates.append(
            ZtunnelCertificate(
                identity=_str(entry, "identity", where),
                state=_str(entry, "state", where),
                chain=tuple(_cert_entries(entry.get("certChain"), f"{where}.certChain")),
                roots=tuple(_cert_entries(entry.get("rootCerts"), f"{where}.rootCerts")),
            )
        )
    return certificates


def _workload(item: object, index: int) -> ZtunnelWorkload:
    where = f"ztunnel-config workloads[{index}]"
    entry = _mapping(item, where)
    waypoint = entry.get("waypoint")
    waypoint_destination = (
        _str(_mapping(waypoint, f"{where}.waypoint"), "destination", f"{where}.waypoint")
        if waypoint
        else None
    )
    return ZtunnelWorkload(
        uid=_str(entry, "uid", where),
        name=_str(entry, "name", where),
        namespace=_str(entry, "namespace", where),
        protocol=_str(entry, "protocol", where),
        service_account=_str(entry, "serviceAccount", where, default="default"),
        node=_str(entry, "node", where, default=""),
        trust_domain=_str(entry, "trustDomain", where, default="cluster.local"),
        workload_ips=tuple(_str_list(entry.get("workloadIps"), f"{where}.workloadIps")),
        waypoint=waypoint_destination,
        status=_str(entry, "status", where, default=""),
        workload_name=_str(entry, "workloadName", where, default=""),
        workload_type=_str(entry, "workloadType", where, default=""),
        cluster_id=_str(entry, "clusterId", where, default=""),
        network=_str(entry, "network", where, default="") or None,
        authorization_policies=tuple(
            _str_list(entry.get("authorizationPolicies"), f"{where}.authorizationPolicies")
        ),
    )


def _cert_entries(raw: object, where: str) -> list[CertificateEntry]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EvidenceParseError(f"{where}: expected a list, got {type(raw).__name__}")
    entries: list[CertificateEntry] = []
    for index, item in enumerate(raw):
        spot = f"{where}[{index}]"
        entry = _mapping(item, spot)
        entries.append(
            CertificateEntry(
                pem=decode_base64_pem(_str(entry, "pem", spot), spot),
                serial_number=_str(entry, "serialNumber", spot, default=""),
                valid_from=_str(entry, "validFrom", spot, default=""),
                expiration_time=_str(entry, "expirationTime", spot, default=""),
            )
        )
    return entries


def decode_base64_pem(encoded: str, where: str) -> str:
    """Decode a base64 field that wraps PEM text (ztunnel `pem`, Envoy `inlineBytes`)."""
    try:
        text = base64.b64decode(encoded, validate=True).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise EvidenceParseError(f"{where}: not base64-encoded PEM text ({exc})") from exc
    if "-----BEGIN" not in text:
        raise EvidenceParseError(f"{where}: base64 decodes to something that is not PEM")
    return text


def _json_array(text: str, what: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceParseError(f"{what}: output is not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, list):
        raise EvidenceParseError(f"{what}: expected a JSON array, got {type(data).__name__}")
    return data


def _mapping(item: object, where: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise EvidenceParseError(f"{where}: expected an object, got {type(item).__name__}")
    return item


_REQUIRED = object()


def _str(entry: Mapping[str, Any], key: str, where: str, default: object = _REQUIRED) -> str:
    value = entry.get(key)
    if value is None:
        if default is _REQUIRED:
            raise EvidenceParseError(f"{where}: missing {key!r}")
        return str(default)
    if not isinstance(value, str):
        raise EvidenceParseError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return value


def _str_list(raw: object, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not all(isinstance(v, str) for v in raw):
        raise EvidenceParseError(f"{where}: expected a list of strings")
    return list(raw)


def _with_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"
