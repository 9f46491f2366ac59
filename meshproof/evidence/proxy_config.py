"""Parser for `istioctl proxy-config secret <pod> -o json` (a sidecar Envoy's SDS secrets, Istio 1.27).

Format: output-formats §3. jsonpb with lowerCamelCase keys; `inlineBytes` is base64 of PEM text. The
workload chain is the active secret `default` (`tlsCertificate.certificateChain`, leaf first); the roots
are the active `ROOTCA` (`validationContext.trustedCa`), or with trust-domain federation the SPIFFE
validator's per-trust-domain bundles (`validationContext.customValidatorConfig`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.ztunnel_config import decode_base64_pem

WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"


@dataclass(frozen=True)
class EnvoySecret:
    name: str
    version_info: str
    last_updated: str
    cert_chain_pem: str | None = None  # tlsCertificate.certificateChain
    trusted_ca_pem: str | None = None  # validationContext.trustedCa
    trust_bundles: Mapping[str, str] = field(default_factory=dict)  # trust domain -> PEM (SPIFFE validator)


@dataclass(frozen=True)
class EnvoySecrets:
    active: tuple[EnvoySecret, ...]
    warming: tuple[EnvoySecret, ...]

    def active_named(self, name: str) -> EnvoySecret | None:
        return next((secret for secret in self.active if secret.name == name), None)

    @property
    def workload_chain_pem(self) -> str | None:
        """The active workload certificate chain (secret `default`), or None if Envoy has none yet."""
        secret = self.active_named(WORKLOAD_SECRET)
        return secret.cert_chain_pem if secret else None

    @property
    def roots_pem(self) -> str | None:
        """The active trust anchors (ROOTCA trustedCa, or every federated bundle), or None."""
        secret = self.active_named(ROOT_SECRET)
        if secret is None:
            return None
        if secret.trusted_ca_pem:
            return secret.trusted_ca_pem
        bundles = "".join(secret.trust_bundles.values())
        return bundles or None


def parse_secrets(text: str) -> EnvoySecrets:
    """Parse the secret dump; `dynamicWarmingSecrets` is absent when empty."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceParseError(
            f"proxy-config secret: output is not JSON ({exc.msg} at line {exc.lineno})"
        ) from exc
    if not isinstance(data, Mapping):
        raise EvidenceParseError(f"proxy-config secret: expected a JSON object, got {type(data).__name__}")
    return EnvoySecrets(
        active=tuple(_secrets(data.get("dynamicActiveSecrets"), "dynamicActiveSecrets")),
        warming=tuple(_secrets(data.get("dynamicWarmingSecrets"), "dynamicWarmingSecrets")),
    )


def _secrets(raw: object, where: str) -> list[EnvoySecret]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EvidenceParseError(f"proxy-config secret {where}: expected a list")
    return [_secret(item, f"{where}[{index}]") for index, item in enumerate(raw)]


def _secret(item: object, where: str) -> EnvoySecret:
    entry = _object(item, where)
    name = entry.get("name")
    if not isinstance(name, str):
        raise EvidenceParseError(f"proxy-config secret {where}: missing 'name'")
    secret = _object(entry.get("secret", {}), f"{where}.secret")
    tls = _object(secret.get("tlsCertificate", {}), f"{where}.secret.tlsCertificate")
    validation = _object(secret.get("validationContext", {}), f"{where}.secret.validationContext")
    return EnvoySecret(
        name=name,
        version_info=str(entry.get("versionInfo", "")),
        last_updated=str(entry.get("lastUpdated", "")),
        cert_chain_pem=_data_source(tls.get("certificateChain"), f"{where}.tlsCertificate.certificateChain"),
        trusted_ca_pem=_data_source(validation.get("trustedCa"), f"{where}.validationContext.trustedCa"),
        trust_bundles=_spiffe_bundles(
            validation.get("customValidatorConfig"), f"{where}.customValidatorConfig"
        ),
    )


def _spiffe_bundles(raw: object, where: str) -> dict[str, str]:
    """Trust bundles of Envoy's SPIFFE cert validator: typedConfig.trustDomains[].{name, trustBundle}."""
    if raw is None:
        return {}
    config = _object(_object(raw, where).get("typedConfig", {}), f"{where}.typedConfig")
    bundles: dict[str, str] = {}
    for index, domain in enumerate(config.get("trustDomains") or []):
        spot = f"{where}.trustDomains[{index}]"
        domain_entry = _object(domain, spot)
        pem = _data_source(domain_entry.get("trustBundle"), f"{spot}.trustBundle")
        if pem:
            bundles[str(domain_entry.get("name", ""))] = pem
    return bundles


def _data_source(raw: object, where: str) -> str | None:
    """An Envoy DataSource: inlineBytes (base64) or inlineString; a filename cannot be read from here."""
    if raw is None:
        return None
    source = _object(raw, where)
    if "inlineBytes" in source:
        return decode_base64_pem(str(source["inlineBytes"]), where)
    if "inlineString" in source:
        return str(source["inlineString"])
    return None


def _object(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise EvidenceParseError(f"proxy-config secret {where}: expected an object, got {type(raw).__name__}")
    return raw
