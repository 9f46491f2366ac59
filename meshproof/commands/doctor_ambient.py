"""`meshproof doctor` on a cluster that already runs an ambient mesh: two read-only, bounded checks, one
line each, for the two ways ambient traffic silently goes without identities.

- A pod is captured for ztunnel only once istio-cni has annotated it `ambient.istio.io/redirection:
  enabled`; without it istiod sends the pod as plain TCP (seen with a real istiod and ztunnel 1.27.9).
- A ztunnel that istiod does not trust to ask for its pods' certificates gets
  `request impersonation authentication failure`: istiod's CA_TRUSTED_NODE_ACCOUNTS must name ztunnel's
  `<namespace>/<service account>`.

Both are warnings: they describe the mesh on the cluster, not whether this machine can run meshproof.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.commands.doctor import API_TIMEOUT, CheckResult
from meshproof.config import RunConfig
from meshproof.kube_connect import one_line
from meshproof.mesh import health, will_run
from meshproof.mesh.spec import MeshSpec

AMBIENT_NAMESPACE_SELECTOR = "istio.io/dataplane-mode=ambient"
MAX_AMBIENT_NAMESPACES = 20  # enough to see a pattern, bounded on a busy cluster
MAX_ZTUNNEL_PODS = 5
ZTUNNEL_LOG_TAIL = 2000
_SHOWN = 3


def check_ambient_capture(cluster: Any) -> CheckResult:
    """Running pods in ambient namespaces carry `ambient.istio.io/redirection: enabled`: istio-cni sets it
    once it has redirected the pod's traffic to ztunnel; without it istiod sends the pod as plain TCP and
    its traffic has no identity (the enrolment check of the suites reads the same annotation)."""
    name = f"ambient capture ({cluster.name})"
    namespaces = cluster.list("v1", "Namespace", label_selector=AMBIENT_NAMESPACE_SELECTOR)
    if not namespaces:
        return CheckResult(
            name, True, f"no namespace labelled {AMBIENT_NAMESPACE_SELECTOR} yet", required=False
        )
    pods = [
        pod
        for ns in namespaces[:MAX_AMBIENT_NAMESPACES]
        for pod in cluster.pods(str(ns["metadata"]["name"]))
        if _capturable(pod)
    ]
    missed = [pod for pod in pods if not health.ambient_redirected(pod).ok]
    shown = len(namespaces[:MAX_AMBIENT_NAMESPACES])
    if not missed:
        return CheckResult(
            name,
            True,
            f"{len(pods)} running pod(s) in {shown} ambient namespace(s) carry "
            f"{health.AMBIENT_REDIRECTION_ANNOTATION}=enabled",
            required=False,
        )
    names = ", ".join(f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in missed[:_SHOWN])
    return CheckResult(
        name,
        False,
        f"{len(missed)} of {len(pods)} running pod(s) in ambient namespaces lack "
        f"{health.AMBIENT_REDIRECTION_ANNOTATION}=enabled ({names}): ztunnel does not capture them",
        "istio-cni sets it when it captures a pod: check the istio-cni-node pod and its log on their nodes, "
        "then restart the pods",
        required=False,
    )


def _capturable(pod: Mapping[str, Any]) -> bool:
    """A running, pod-network pod that did not opt out (`istio.io/dataplane-mode: none`)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    opted_out = labels.get("istio.io/dataplane-mode") == "none"
    return status.get("phase") == "Running" and not spec.get("hostNetwork") and not opted_out


def check_ztunnel_certificates(cluster: Any) -> CheckResult:
    """ztunnel can get certificates for its pods: its recent log has no `request impersonation
    authentication failure` (istiod's answer when it does not trust ztunnel's service account to ask for
    other identities), and every istiod's CA_TRUSTED_NODE_ACCOUNTS names ztunnel's `<ns>/<sa>`. A clean log
    alone proves little: ztunnel 1.27 logs a failed fetch at debug level, so the trust setting is read too."""
    name = f"ztunnel certificates ({cluster.name})"
    ztunnels = cluster.list("v1", "Pod", label_selector="app=ztunnel")[:MAX_ZTUNNEL_PODS]
    if not ztunnels:
        return CheckResult(name, True, "no ztunnel pods (app=ztunnel) yet: nothing to check", required=False)
    first = ztunnels[0]
    account = (
        f"{first['metadata']['namespace']}/{(first.get('spec') or {}).get('serviceAccountName', 'default')}"
    )
    istiods = cluster.list("apps/v1", "Deployment", label_selector="app=istiod")
    trust = health.ztunnel_trusted(
        {
            f"{d['metadata'].get('namespace')}/{d['metadata']['name']}": health.container_env(
                d, "discovery"
            ).get(health.CA_TRUSTED_NODE_ACCOUNTS)
            for d in istiods
        },
        account,
    )
    refused: list[tuple[str, int]] = []
    for pod in ztunnels:
        meta = pod["metadata"]
        lines = health.impersonation_failures(
            cluster.logs(meta["name"], meta["namespace"], tail_lines=ZTUNNEL_LOG_TAIL)
        )
        if lines:
            refused.append((f"{meta['namespace']}/{meta['name']}", len(lines)))
    fix = (
        f"make istiod trust {account}: istiod chart values trustedZtunnelNamespace/trustedZtunnelName "
        f"(Sail: spec.values.pilot.trustedZtunnelNamespace), which set {health.CA_TRUSTED_NODE_ACCOUNTS}"
    )
    if refused:
        where = ", ".join(f"{pod} ({count}x)" for pod, count in refused[:_SHOWN])
        return CheckResult(
            name,
            False,
            f"istiod refused ztunnel certificates ('{health.IMPERSONATION_FAILURE}' in {where}); "
            f"{trust.reason}",
            fix,
            required=False,
        )
    checked = (
        f"no '{health.IMPERSONATION_FAILURE}' in the last {ZTUNNEL_LOG_TAIL} log lines of "
        f"{len(ztunnels)} ztunnel pod(s)"
    )
    if not istiods:
        return CheckResult(name, True, f"{checked}; {trust.reason} (istiod runs elsewhere)", required=False)
    return CheckResult(name, trust.ok, f"{checked}; {trust.reason}", "" if trust.ok else fix, required=False)


def existing_mesh_checks(
    cfg: RunConfig, *, cluster_factory: will_run.ClusterFactory | None = None
) -> list[CheckResult]:
    """The ambient checks above on each cluster of an existing-cluster run; a cluster that cannot be read
    gets one warning line saying why."""
    if cfg.provider == "kind" or cfg.mode != "ambient":
        return []
    timeout = API_TIMEOUT * cfg.timeout_scale
    factory = cluster_factory or will_run.cluster_factory(cfg.kubeconfig, cfg.run_id, timeout=timeout)
    results: list[CheckResult] = []
    for spec in MeshSpec.from_config(cfg).clusters:
        cluster = None
        try:
            cluster = factory(spec)
            results.append(check_ambient_capture(cluster))
            results.append(check_ztunnel_certificates(cluster))
        except Exception as exc:
            results.append(
                CheckResult(f"ambient mesh ({spec.name})", False, one_line(exc)[:160], required=False)
            )
        finally:
            getattr(cluster, "close", lambda: None)()
    return results
