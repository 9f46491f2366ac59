"""Is each arm's traffic really on the path the arm claims? (perf-anchors §7.2: check before measuring.)

Pure verdicts over observations the cluster runner collects: the client and server pod objects, the
server Service, and the body of fortio's `/debug` echo as the server saw the request. The expectations
of one arm are the negative control of another: no-mesh must show no sidecar, no ambient redirection and
no client certificate header; sidecar must show all of its signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.checks.verdict import Verdict

XFCC_HEADER = "x-forwarded-client-cert"


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """Injected: `istio-proxy` in containers or (native sidecars, istio-facts §0 trap 3) initContainers."""
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return "istio-proxy" in names or "sidecar.istio.io/status" in annotations


def ambient_redirected(pod: Mapping[str, Any]) -> bool:
    """istio-cni annotates enrolled pods `ambient.istio.io/redirection: enabled` (istio-facts §2.2)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get("ambient.istio.io/redirection") == "enabled"


def waypoint_bound(service: Mapping[str, Any] | None) -> bool:
    """Service status condition `istio.io/WaypointBound=True` (istio-facts §2.3)."""
    conditions = ((service or {}).get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "istio.io/WaypointBound" and str(c.get("status")) == "True" for c in conditions
    )


def client_cert_header(debug_body: str) -> str | None:
    """The X-Forwarded-Client-Cert value in fortio's `/debug` echo (output-formats §1.4), if any."""
    for line in debug_body.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == XFCC_HEADER:
            return value.strip()
    return None


def verify_path(
    arm: str,
    *,
    client_pod: Mapping[str, Any],
    server_pod: Mapping[str, Any],
    server_service: Mapping[str, Any] | None,
    debug_body: str,
) -> Verdict:
    """Every sign the arm needs present, every sign of another arm absent."""
    problems: list[str] = []
    sidecars = (has_sidecar(client_pod), has_sidecar(server_pod))
    redirected = (ambient_redirected(client_pod), ambient_redirected(server_pod))
    bound = waypoint_bound(server_service)
    xfcc = client_cert_header(debug_body)

    def expect(condition: bool, problem: str) -> None:
        if not condition:
            problems.append(problem)

    if arm == "no-mesh":
        expect(not any(sidecars), "a pod has an istio-proxy sidecar")
        expect(not any(redirected), "a pod is ambient-redirected")
        expect(xfcc is None, "the server saw X-Forwarded-Client-Cert (traffic crossed a sidecar)")
    elif arm == "sidecar":
        expect(all(sidecars), f"sidecar injected (client, server) = {sidecars}, expected both")
        # istio-facts §3.2: XFCC at the server proves the sidecar-to-sidecar hop was mTLS
        expect(xfcc is not None and "URI=spiffe://" in xfcc, "no X-Forwarded-Client-Cert with a SPIFFE URI")
    elif arm in ("ambient", "waypoint"):
        expect(not any(sidecars), "a pod has an istio-proxy sidecar")
        expect(all(redirected), f"ambient redirection (client, server) = {redirected}, expected both")
        if arm == "waypoint":
            expect(bound, "the server Service is not WaypointBound")
        else:
            expect(not bound, "the server Service is bound to a waypoint")
    else:
        return Verdict.failed(f"unknown arm {arm!r}")
    if problems:
        return Verdict.failed(f"arm {arm}: " + "; ".join(problems))
    return Verdict.passed(f"arm {arm}: path confirmed")
