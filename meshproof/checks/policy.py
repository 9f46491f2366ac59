"""Checks over the status istiod writes on an AuthorizationPolicy (ambient).

ztunnel enforces only ALLOW and DENY; for a CUSTOM or AUDIT policy that targets ztunnel (selector or
namespace-wide, no targetRefs) istiod writes condition ZtunnelAccepted=False, reason UnsupportedValue,
message "ztunnel does not support the <ACTION> action" (istio-facts §0 trap 8;
istio pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go convertAuthorizationPolicy and
policies.go Bound = policy != nil). A conformance test reports such a policy as unsupported, not passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.checks.verdict import Verdict
from meshproof.evidence.policy_status import ZTUNNEL_ACCEPTED, PolicyCondition, generation, policy_conditions

UNSUPPORTED_VALUE = "UnsupportedValue"


def ztunnel_rejected_action(policy: Mapping[str, Any], action: str) -> Verdict:
    """istiod reports that ztunnel does not apply this policy's action (CUSTOM or AUDIT).

    Passes only on a current-generation ZtunnelAccepted=False condition whose message names the action.
    """
    condition, stale = _current_condition(policy, ZTUNNEL_ACCEPTED)
    if condition is None:
        return Verdict.failed(stale or f"no {ZTUNNEL_ACCEPTED} condition on {_name(policy)} yet")
    wanted = f"ztunnel does not support the {action.upper()} action"
    if condition.status == "False" and wanted in condition.message:
        return Verdict.passed(
            f"{_name(policy)}: {ZTUNNEL_ACCEPTED}=False ({condition.reason}): {condition.message}"
        )
    return Verdict.failed(
        f"{_name(policy)}: expected {ZTUNNEL_ACCEPTED}=False with {wanted!r}, got "
        f"{ZTUNNEL_ACCEPTED}={condition.status} ({condition.reason}): {condition.message!r}"
    )


def policy_condition_true(policy: Mapping[str, Any], condition_type: str) -> Verdict:
    """The condition (ZtunnelAccepted or WaypointAccepted) is True for the policy's current generation.

    True with reason UnsupportedValue means accepted with a warning (e.g. HTTP attributes dropped by
    ztunnel, facts §4); the reason is reported so a test can tell.
    """
    condition, stale = _current_condition(policy, condition_type)
    if condition is None:
        return Verdict.failed(stale or f"no {condition_type} condition on {_name(policy)} yet")
    if condition.status != "True":
        return Verdict.failed(
            f"{_name(policy)}: {condition_type}={condition.status} ({condition.reason}): {condition.message}"
        )
    warning = " (with warning)" if condition.reason == UNSUPPORTED_VALUE else ""
    return Verdict.passed(
        f"{_name(policy)}: {condition_type}=True{warning} ({condition.reason}): {condition.message}"
    )


def _current_condition(policy: Mapping[str, Any], condition_type: str) -> tuple[PolicyCondition | None, str]:
    condition = next((c for c in policy_conditions(policy) if c.type == condition_type), None)
    if condition is None:
        return None, ""
    current = generation(policy)
    if (
        current is not None
        and condition.observed_generation is not None
        and condition.observed_generation < current
    ):
        return None, (
            f"{_name(policy)}: {condition_type} is for generation {condition.observed_generation}, "
            f"the policy is at {current} (istiod has not reconciled it yet)"
        )
    return condition, ""


def _name(policy: Mapping[str, Any]) -> str:
    metadata = policy.get("metadata") or {}
    return f"AuthorizationPolicy {metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
