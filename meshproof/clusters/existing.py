"""existing provider: any kubeconfig and contexts; no cluster is created or deleted.

Only what the mesh cannot run without is added to the cluster (the Gateway API CRDs for ambient and the
inference extension); metrics-server and LoadBalancer addresses are the cluster owner's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from meshproof.clusters.base import gateway_api_step, needs_gateway_api
from meshproof.config import RunConfig
from meshproof.mesh.model import PlanStep
from meshproof.mesh.spec import MeshSpec

if TYPE_CHECKING:
    from meshproof.kube import Cluster


class ExistingProvider:
    name = "existing"
    owns_clusters = False

    def plan_steps(self, spec: MeshSpec) -> list[PlanStep]:
        return [gateway_api_step(spec, c) for c in spec.clusters] if needs_gateway_api(spec) else []

    def prerequisites(self, spec: MeshSpec) -> list[str]:
        return ["every context answers (API server reachable with the given kubeconfig)"]

    def before_provision(self, cfg: RunConfig, spec: MeshSpec) -> None:
        return None

    def check_clusters(self, spec: MeshSpec, clusters: Mapping[str, Cluster]) -> dict[str, str]:
        # server_version raises ClusterUnreachable (one line) when a context does not answer.
        return {name: f"Kubernetes {cluster.server_version()}" for name, cluster in clusters.items()}
