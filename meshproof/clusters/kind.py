"""kind provider: one or several local clusters from a generated config, LoadBalancer addresses,
metrics-server and the Gateway API CRDs.

LoadBalancer addresses come from cloud-provider-kind, not MetalLB: it is the kind project's own
controller, needs no address pool (MetalLB needs a range carved out of the docker network, which is only
known on the machine, so the plan could not show it), and one instance serves every kind cluster, which
multicluster east-west gateways need. It runs as one container next to the clusters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshproof import tools
from meshproof.clusters.base import ProvisionError, gateway_api_step
from meshproof.config import RunConfig
from meshproof.mesh import argv, pins
from meshproof.mesh.model import CONFIG_FILE, PlanStep, WaitSpec
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.mesh.templates import render_one

if TYPE_CHECKING:
    from meshproof.kube import Cluster


def kind_config(cluster: ClusterSpec) -> dict[str, Any]:
    assert cluster.kind is not None
    nodes = cluster.kind
    return render_one(
        "kind/cluster.yaml.j2",
        name=cluster.name,
        node_image=nodes.node_image,
        workers=nodes.workers,
        pod_subnet=nodes.pod_subnet,
        service_subnet=nodes.service_subnet,
    )


def create_cluster_step(cluster: ClusterSpec) -> PlanStep:
    return PlanStep(
        title=f"Create kind cluster {cluster.name}",
        cluster=cluster.name,
        stage="cluster",
        command=[
            "kind",
            "create",
            "cluster",
            "--name",
            cluster.name,
            "--config",
            CONFIG_FILE,
            "--wait",
            "5m",
        ],
        config_file=kind_config(cluster),
        # Succeeds only when the cluster exists: a reused cluster is neither created nor deleted by this run.
        skip_if=["kind", "get", "kubeconfig", "--name", cluster.name],
        undo_command=["kind", "delete", "cluster", "--name", cluster.name],
        wait=[
            WaitSpec(
                api_version="v1",
                kind="Node",
                name=f"{cluster.name}-control-plane",
                condition="Ready",
                budget="cluster_create",
            )
        ],
    )


def load_balancer_step(cluster: ClusterSpec) -> PlanStep:
    name = pins.CLOUD_PROVIDER_KIND_CONTAINER
    return PlanStep(
        title="Start cloud-provider-kind (LoadBalancer addresses for every kind cluster)",
        cluster=cluster.name,
        stage="cluster",
        command=[
            "docker",
            "run",
            "--detach",
            "--name",
            name,
            "--restart",
            "unless-stopped",
            "--network",
            "kind",
            "--volume",
            "/var/run/docker.sock:/var/run/docker.sock",
            pins.CLOUD_PROVIDER_KIND_IMAGE,
        ],
        skip_if=["docker", "container", "inspect", name],
        undo_command=["docker", "rm", "--force", name],
    )


def metrics_server_step(cluster: ClusterSpec) -> PlanStep:
    return PlanStep(
        title=f"Install metrics-server {pins.METRICS_SERVER_CHART_VERSION} (pod CPU/memory for benchmarks)",
        cluster=cluster.name,
        stage="platform",
        command=argv.helm_install(
            cluster,
            release="metrics-server",
            chart="metrics-server",
            repo=pins.METRICS_SERVER_HELM_REPO,
            version=pins.METRICS_SERVER_CHART_VERSION,
            namespace="kube-system",
        ),
        helm_chart="metrics-server",
        # kind's kubelets serve self-signed certificates.
        helm_values={"args": ["--kubelet-insecure-tls"]},
        wait=[
            WaitSpec(
                api_version="apps/v1",
                kind="Deployment",
                name="metrics-server",
                namespace="kube-system",
                rollout=True,
                budget="rollout",
            )
        ],
    )


class KindProvider:
    name = "kind"
    owns_clusters = True

    def plan_steps(self, spec: MeshSpec) -> list[PlanStep]:
        steps = [create_cluster_step(c) for c in spec.clusters]
        steps.append(load_balancer_step(spec.primary))
        for cluster in spec.clusters:
            steps.append(metrics_server_step(cluster))
            steps.append(gateway_api_step(spec, cluster))
        return steps

    def prerequisites(self, spec: MeshSpec) -> list[str]:
        names = ", ".join(c.name for c in spec.clusters)
        return [f"kind clusters {names} do not exist yet, or --reuse-cluster is given"]

    def before_provision(self, cfg: RunConfig, spec: MeshSpec) -> None:
        existing = existing_kind_clusters()
        clash = [c.name for c in spec.clusters if c.name in existing]
        if clash and not cfg.reuse_cluster:
            raise ProvisionError(
                f"kind cluster {clash[0]} already exists; pass --reuse-cluster to use it, or delete it with: "
                f"kind delete cluster --name {clash[0]}"
            )

    def check_clusters(self, spec: MeshSpec, clusters: Mapping[str, Cluster]) -> dict[str, str]:
        return {name: f"kind, Kubernetes {cluster.server_version()}" for name, cluster in clusters.items()}


def existing_kind_clusters(timeout: float = 60.0) -> set[str]:
    result = tools.run(["kind", "get", "clusters"], timeout=timeout)
    return parse_kind_clusters(result.stdout)


def parse_kind_clusters(stdout: str) -> set[str]:
    # `kind get clusters` prints one name per line; "No kind clusters found." goes to stderr.
    return {line.strip() for line in stdout.splitlines() if line.strip()}


# --- what the clusters need from Docker ------------------------------------------------------------------

GIB = 1024**3


@dataclass(frozen=True)
class KindResources:
    cpus: int
    memory_gib: int

    def describe(self) -> str:
        return f"{self.cpus} CPUs and {self.memory_gib} GiB of memory"


# An estimate per meshproof kind cluster (one control plane + pins.KIND_WORKERS workers), not a measurement:
# control-plane node (etcd, apiserver, controllers) ~1 GiB, each worker (kubelet, kube-proxy, kindnet)
# ~0.4 GiB, the mesh (istiod ~0.5 GiB, east-west/inference gateways, ztunnel + istio-cni per node) and the
# test apps ~1.5 GiB: about 3.5 GiB, rounded up to 4; apiserver and istiod each want a core while
# converging, so 2 CPUs. Two clusters (multicluster) need twice that, on one Docker daemon: 4 CPUs, 8 GiB.
PER_CLUSTER = KindResources(cpus=2, memory_gib=4)


def resources_needed(cluster_count: int) -> KindResources:
    return KindResources(PER_CLUSTER.cpus * cluster_count, PER_CLUSTER.memory_gib * cluster_count)


DOCKER_RESOURCES_FORMAT = "{{.NCPU}} {{.MemTotal}}"  # `docker info --format`: CPUs, memory in bytes


def parse_docker_resources(stdout: str) -> tuple[int, int]:
    """`docker info --format '{{.NCPU}} {{.MemTotal}}'` -> (cpus, memory bytes); ValueError otherwise."""
    parts = stdout.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"unexpected docker info output {stdout.strip()[:80]!r}")
    return int(parts[0]), int(parts[1])


def resource_shortfall(cpus: int, memory_bytes: int, needed: KindResources) -> str | None:
    """What Docker lacks for `needed` (None when it has enough)."""
    short = []
    if cpus < needed.cpus:
        short.append(f"{cpus} CPUs < {needed.cpus}")
    if memory_bytes < needed.memory_gib * GIB:
        short.append(f"{memory_bytes / GIB:.1f} GiB < {needed.memory_gib} GiB")
    return ", ".join(short) or None
