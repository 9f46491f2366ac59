"""Reader for the status conditions istiod writes on an AuthorizationPolicy (ambient, Istio 1.27).

Condition types `ZtunnelAccepted` and `WaypointAccepted` (istio-facts §4; istio@1.27
pilot/pkg/model/service.go). For a selector/namespace policy, istiod's ambient index writes
ZtunnelAccepted with status = whether ztunnel got the policy, reason/message from the conversion
(e.g. reason UnsupportedValue, "ztunnel does not support the CUSTOM action"; istio
pilot/pkg/serviceregistry/kube/controller/ambient/{authorization,policies}.go).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ZTUNNEL_ACCEPTED = "ZtunnelAccepted"
WAYPOINT_ACCEPTED = "WaypointAccepted"


@dataclass(frozen=True)
class PolicyCondition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    observed_generation: int | None


def policy_conditions(obj: Mapping[str, Any]) -> list[PolicyCondition]:
    """The object's `.status.conditions`, typed; [] when istiod has written none yet."""
    status = obj.get("status") or {}
    raw_conditions = status.get("conditions") if isinstance(status, Mapping) else None
    conditions: list[PolicyCondition] = []
    for raw in raw_conditions or []:
        if not isinstance(raw, Mapping):
            continue
        conditions.append(
            PolicyCondition(
                type=str(raw.get("type", "")),
                status=str(raw.get("status", "")),
                reason=str(raw.get("reason", "")),
                message=str(raw.get("message", "")),
                observed_generation=_as_int(raw.get("observedGeneration")),
            )
        )
    return conditions


def generation(obj: Mapping[str, Any]) -> int | None:
    metadata = obj.get("metadata") or {}
    return _as_int(metadata.get("generation")) if isinstance(metadata, Mapping) else None


def _as_int(value: object) -> int | None:
    # Istio writes observedGeneration as a string in some versions ("1") and an integer in others.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class AdmissionDenial:
    """A validating webhook refused an object: which webhook, and the reason it gave."""

    webhook: str
    reason: str

    def __str__(self) -> str:
        return f'admission webhook "{self.webhook}" denied the request: {self.reason}'


_ADMISSION_DENIAL = re.compile(r'admission webhook "(?P<webhook>[^"]+)" denied the request: (?P<reason>.*)')


def admission_denial(error_text: str) -> AdmissionDenial | None:
    """The webhook denial in an API server error (Kubernetes' wording, e.g. istiod's
    `admission webhook "validation.istio.io" denied the request: configuration is invalid: ...`), or None
    when the error is something else (conflict, RBAC, unreachable)."""
    match = _ADMISSION_DENIAL.search(" ".join(error_text.split()))
    if match is None:
        return None
    return AdmissionDenial(match.group("webhook"), match.group("reason").strip())
