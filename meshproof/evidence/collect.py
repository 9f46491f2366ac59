"""Thin collectors: fetch one kind of observation from a cluster and hand it to its parser.

They decide nothing. Each takes what it needs as a small protocol (an istioctl runner, or the few
`Cluster` methods it calls, from meshproof/kube_api.py), so fixtures pass the real objects and engine
tests pass fakes.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError
from meshproof.evidence.prometheus import MetricSample, parse_exposition
from meshproof.evidence.proxy_config import EnvoySecrets, parse_secrets
from meshproof.evidence.ztunnel_config import (
    ZtunnelCertificate,
    ZtunnelWorkload,
    parse_certificates,
    parse_workloads,
)
from meshproof.evidence.ztunnel_logs import AccessLogRecord, parse_access_log
from meshproof.kube_api import LogReader, ObjectGetter, ObjectLister, PodExecutor, PodLister, PortForwarding

T = TypeVar("T")

ZTUNNEL_STATS_PORT = 15020  # ztunnel@1.27 src/config.rs DEFAULT_STATS_PORT (output-formats §4.1)
ZTUNNEL_POD_SELECTOR = "app=ztunnel"  # label of the ztunnel DaemonSet pods (Helm chart and Sail)
# The DaemonSet itself carries only `app.kubernetes.io/name: ztunnel`; `app: ztunnel` is on its pod
# template alone (istio/istio@1.27.9 manifests/charts/ztunnel/templates/daemonset.yaml).
ZTUNNEL_DAEMONSET_SELECTOR = "app.kubernetes.io/name=ztunnel"


class CommandOutput(Protocol):
    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


class CommandRunner(Protocol):
    """meshproof.tools.run: run a command, raise on non-zero exit when check is true."""

    def __call__(self, args: Sequence[str], *, timeout: float, check: bool = True) -> CommandOutput: ...


@dataclass(frozen=True)
class Istioctl:
    """How to call istioctl against one cluster: the binary, the runner, and the kube flags."""

    run: CommandRunner
    binary: str = "istioctl"
    kubeconfig: Path | None = None
    context: str | None = None
    timeout: float = 60.0

    def output(self, args: Sequence[str]) -> str:
        command = [self.binary, *args, *self._kube_flags()]
        result = self.run(command, timeout=self.timeout, check=False)
        if result.returncode != 0:
            tail = " ".join(result.stderr.strip().splitlines()[-2:]) or "no stderr"
            raise EvidenceCollectionError(f"{' '.join(command[:4])} ... exited {result.returncode}: {tail}")
        return result.stdout

    def _kube_flags(self) -> list[str]:
        flags: list[str] = []
        if self.kubeconfig is not None:
            flags += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            flags += ["--context", self.context]
        return flags


def ztunnel_workloads(
    istioctl: Istioctl, ztunnel_namespace: str, *, workload_namespace: str | None = None
) -> list[ZtunnelWorkload]:
    """`istioctl ztunnel-config workloads -n <ztunnel ns> -o json` (facts §2.2: on OSSM pass -n ztunnel).

    Without a pod argument istioctl reads `daemonset/ztunnel` in `-n`; every ztunnel knows every
    workload, so any instance answers.
    """
    args = ["ztunnel-config", "workloads", "-n", ztunnel_namespace, "-o", "json"]
    if workload_namespace:
        args += ["--workload-namespace", workload_namespace]
    return _parsed(parse_workloads, istioctl.output(args), "ztunnel-config workloads")


def ztunnel_certificates(
    istioctl: Istioctl, ztunnel_pod: str, ztunnel_namespace: str
) -> list[ZtunnelCertificate]:
    """`istioctl ztunnel-config certificates <pod>.<ns> -o json`.

    A ztunnel holds certificates only for identities of pods on its node (facts §3.3), so pass the
    ztunnel pod on the workload's node (see `ztunnel_pod_on_node`).
    """
    args = ["ztunnel-config", "certificates", f"{ztunnel_pod}.{ztunnel_namespace}", "-o", "json"]
    return _parsed(parse_certificates, istioctl.output(args), "ztunnel-config certificates")


def proxy_secrets(istioctl: Istioctl, pod: str, namespace: str) -> EnvoySecrets:
    """`istioctl proxy-config secret <pod> -n <ns> -o json` for a sidecar (output-formats §3)."""
    args = ["proxy-config", "secret", pod, "-n", namespace, "-o", "json"]
    return _parsed(parse_secrets, istioctl.output(args), "proxy-config secret")


def ztunnel_pod_on_node(cluster: PodLister, ztunnel_namespace: str, node: str) -> str:
    """The name of the running ztunnel pod on `node`."""
    pods = cluster.pods(ztunnel_namespace, ZTUNNEL_POD_SELECTOR)
    for pod in pods:
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        if spec.get("nodeName") == node and status.get("phase") == "Running":
            return str(pod["metadata"]["name"])
    raise EvidenceCollectionError(
        f"no running ztunnel pod on node {node!r} in namespace {ztunnel_namespace!r} "
        f"({len(pods)} pod(s) match {ZTUNNEL_POD_SELECTOR}); is ambient installed there?"
    )


def ztunnels_in_cluster(cluster: ObjectLister) -> list[str]:
    """Every ztunnel the cluster runs, in any namespace: DaemonSets by their own label and pods by the
    pod template's label (a ztunnel installed some other way still runs labelled pods), as
    `DaemonSet <ns>/<name>` / `Pod <ns>/<name>`."""
    found = [
        f"DaemonSet {d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in cluster.list("apps/v1", "DaemonSet", label_selector=ZTUNNEL_DAEMONSET_SELECTOR)
    ]
    found += [
        f"Pod {p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in cluster.list("v1", "Pod", label_selector=ZTUNNEL_POD_SELECTOR)
    ]
    return found


def ztunnel_metrics(
    cluster: PortForwarding, pod: str, ztunnel_namespace: str, *, timeout: float = 10.0
) -> list[MetricSample]:
    """Scrape a ztunnel's `:15020/metrics` through a port-forward to loopback."""
    with cluster.port_forward(pod, ztunnel_namespace, ZTUNNEL_STATS_PORT) as local_port:
        url = f"http://127.0.0.1:{local_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # a loopback port-forward
                body = response.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            raise EvidenceCollectionError(
                f"scraping {pod}.{ztunnel_namespace}:{ZTUNNEL_STATS_PORT}/metrics failed: {exc}"
            ) from exc
    return _parsed(parse_exposition, body, f"metrics of {pod}")


def envoy_metrics(
    cluster: PodExecutor, pod: str, namespace: str, *, timeout: float = 30.0
) -> list[MetricSample]:
    """A sidecar's Prometheus stats via `pilot-agent request GET stats/prometheus` (facts §3.2)."""
    result = cluster.exec(
        pod, namespace, ["pilot-agent", "request", "GET", "stats/prometheus"], "istio-proxy", timeout=timeout
    )
    if result.exit_code != 0:
        raise EvidenceCollectionError(
            f"pilot-agent stats in {namespace}/{pod} exited {result.exit_code}: "
            f"{result.stderr.strip()[-200:]}"
        )
    return _parsed(parse_exposition, result.stdout, f"stats of {namespace}/{pod}")


def ztunnel_access_logs(
    cluster: LogReader, pod: str, ztunnel_namespace: str, *, since_seconds: int | None = None
) -> list[AccessLogRecord]:
    """The access records in one ztunnel pod's log (optionally only the last `since_seconds`)."""
    text = cluster.logs(pod, ztunnel_namespace, None, since_seconds=since_seconds)
    return _parsed(parse_access_log, text, f"log of {ztunnel_namespace}/{pod}")


def authorization_policy(cluster: ObjectGetter, name: str, namespace: str) -> dict[str, Any]:
    """The AuthorizationPolicy object (with the status istiod wrote), for the policy-status checks."""
    obj = cluster.get("security.istio.io/v1", "AuthorizationPolicy", name, namespace)
    if obj is None:
        raise EvidenceCollectionError(f"AuthorizationPolicy {namespace}/{name} not found")
    return obj


def _parsed(parser: Callable[[str], T], text: str, what: str) -> T:
    try:
        return parser(text)
    except EvidenceParseError as exc:
        raise EvidenceCollectionError(f"{what}: {exc}") from exc
