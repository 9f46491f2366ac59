"""The multicluster suite's apps: one namespace of the same name in both clusters, enrolled per mode.

- `mc-server`: a fortio echo in each cluster behind a Service of the same name in each (a global service:
  replies from both clusters, failover when one side has no replicas);
- `mc-remote`: the server pods only in cluster 2; its Service exists in both clusters (cluster 1 needs it
  for DNS and for the mesh to know the host; Istio's multicluster docs deploy the Service everywhere);
- `mc-client`: the curl client, in cluster 1.

Ambient multicluster in 1.27 only sends a service across clusters when its Service carries
`istio.io/global: "true"` in every cluster (istio-facts §8.1); the label is set on both Services and
taken off by the ambient control. Sidecar multi-primary needs no label. The templates are the shared
workload templates (manifests/workloads/), so the pods are the same echo/curl apps the other suites use.

Pure rendering plus `deploy`/`remove` over the few Cluster calls they need (meshproof.kube_api), so the
orchestration is tested against fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from meshproof.kube_api import ObjectApplier, ObjectDeleter, PodLister, RolloutWaiter
from meshproof.workloads import (
    RenderOptions,
    Workload,
    WorkloadClass,
    echo_text,
    namespace_labels,
    render_template,
    run_namespace,
)

GLOBAL_LABEL = "istio.io/global"  # istio-facts §8.1: ambient services cross clusters only with it
SERVER = "mc-server"
REMOTE_SERVER = "mc-remote"
CLIENT = "mc-client"


def namespace_for(run_id: str) -> str:
    """`mp-<run id>-mc`, DNS-label safe; the same name in both clusters (namespace sameness)."""
    return run_namespace(run_id, "mc")


def workload_class_for(mode: str) -> WorkloadClass:
    if mode == "sidecar":
        return WorkloadClass.SIDECAR
    if mode == "ambient":
        return WorkloadClass.AMBIENT
    raise ValueError(f"unknown mesh mode {mode!r}: expected sidecar or ambient")


@dataclass(frozen=True)
class McWorkloads:
    """What the suite deployed: the namespace and class, and the three workloads."""

    namespace: str
    workload_class: WorkloadClass

    def workload(self, name: str) -> Workload:
        return Workload(self.workload_class, self.namespace, name)

    @property
    def server(self) -> Workload:
        return self.workload(SERVER)

    @property
    def remote_server(self) -> Workload:
        return self.workload(REMOTE_SERVER)

    @property
    def client(self) -> Workload:
        return self.workload(CLIENT)

    @property
    def global_services(self) -> bool:
        return self.workload_class is WorkloadClass.AMBIENT


def _echo(
    mc: McWorkloads, name: str, options: RenderOptions, *, with_service: bool, global_label: bool
) -> list[dict[str, Any]]:
    labels = {GLOBAL_LABEL: "true"} if global_label else {}
    text = echo_text(mc.workload(name), options, with_service=with_service, service_labels=labels)
    return [d for d in yaml.safe_load_all(text) if d]


def render_cluster(mc: McWorkloads, index: int, options: RenderOptions) -> list[dict[str, Any]]:
    """The documents for cluster `index` (0 = cluster 1, which runs the client; 1 = cluster 2)."""
    docs = render_template(
        "namespace.yaml.j2",
        namespace=mc.namespace,
        labels=namespace_labels(mc.workload_class, options.revision),
    )
    docs += _echo(mc, SERVER, options, with_service=True, global_label=mc.global_services)
    remote = _echo(mc, REMOTE_SERVER, options, with_service=True, global_label=mc.global_services)
    if index == 0:
        docs += [d for d in remote if d["kind"] == "Service"]  # the host, without local pods
        docs += _echo(mc, CLIENT, options, with_service=False, global_label=False)
    else:
        docs += remote
    return docs


def service_document(
    mc: McWorkloads, name: str, options: RenderOptions, *, global_label: bool
) -> dict[str, Any]:
    """One Service as deployed, with or without the global label (the ambient control re-applies it)."""
    (service,) = [
        d
        for d in _echo(mc, name, options, with_service=True, global_label=global_label)
        if d["kind"] == "Service"
    ]
    return service


def deployments_in(mc: McWorkloads, index: int) -> list[str]:
    return [SERVER, CLIENT] if index == 0 else [SERVER, REMOTE_SERVER]


class McCluster(ObjectApplier, ObjectDeleter, RolloutWaiter, PodLister, Protocol):
    """What deploy/remove need of meshproof.kube.Cluster."""


def deploy(
    clusters: Sequence[McCluster], mc: McWorkloads, options: RenderOptions, *, rollout_timeout: float
) -> None:
    """Apply in both clusters first (they start in parallel), then wait for every Deployment."""
    if len(clusters) != 2:
        raise ValueError(f"the multicluster apps need exactly two clusters, got {len(clusters)}")
    for index, cluster in enumerate(clusters):
        cluster.apply(render_cluster(mc, index, options))
    for index, cluster in enumerate(clusters):
        for name in deployments_in(mc, index):
            cluster.wait_rollout("Deployment", name, mc.namespace, timeout=rollout_timeout)


def remove(clusters: Sequence[McCluster], mc: McWorkloads) -> None:
    for cluster in clusters:
        cluster.delete("v1", "Namespace", mc.namespace)


def scale_document(mc: McWorkloads, name: str, options: RenderOptions, replicas: int) -> dict[str, Any]:
    """The Deployment as deployed, at `replicas` (a full document: server-side apply keeps the rest)."""
    (deployment,) = [
        d
        for d in _echo(mc, name, options, with_service=False, global_label=False)
        if d["kind"] == "Deployment"
    ]
    return {**deployment, "spec": {**deployment["spec"], "replicas": replicas}}
