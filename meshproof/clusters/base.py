"""What every cluster provider offers: its plan steps, its live prerequisite checks, its refusals.

A provider decides where clusters come from (kind creates them, openshift and existing use a kubeconfig)
and what the cluster needs before any mesh (LoadBalancer addresses, metrics-server, Gateway API CRDs).
The mesh install itself is the installers' business (`meshproof.mesh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from meshproof.config import Feature, RunConfig
from meshproof.mesh import argv, pins
from meshproof.mesh.model import CrdBundle, Download, PlanStep
from meshproof.mesh.olm import crd_established
from meshproof.mesh.spec import ClusterSpec, MeshSpec

if TYPE_CHECKING:
    from meshproof.kube import Cluster


class ProvisionError(Exception):
    """Provisioning cannot go on; the message is one line naming the problem and the fix."""


class Provider(Protocol):
    name: str
    # True when the provider created the clusters and removes them at the end (kind).
    owns_clusters: bool

    def plan_steps(self, spec: MeshSpec) -> list[PlanStep]:
        """The cluster- and platform-stage steps, in order."""
        ...

    def prerequisites(self, spec: MeshSpec) -> list[str]:
        """What is checked on the live clusters before the first step (for the plan text)."""
        ...

    def before_provision(self, cfg: RunConfig, spec: MeshSpec) -> None:
        """Refuse early (ProvisionError) when provisioning would clobber something."""
        ...

    def check_clusters(self, spec: MeshSpec, clusters: Mapping[str, Cluster]) -> dict[str, str]:
        """Refuse (ProvisionError) when a live cluster cannot run the requested mesh; else return what was
        learned about each cluster (e.g. "OCP 4.19.7"), for the run's log and report."""
        ...


def needs_gateway_api(spec: MeshSpec) -> bool:
    # Waypoints (ambient), the ambient east-west gateway and the inference extension are Gateway API objects.
    return spec.ambient or spec.has(Feature.GIE)


def gateway_api_step(spec: MeshSpec, cluster: ClusterSpec) -> PlanStep:
    """The Gateway API CRDs: skipped when the cluster has them at the pinned version or newer (never
    downgraded), applied from `--gateway-api-crds PATH` when given, else downloaded (refused offline)."""
    local = spec.gateway_api_crds
    source = local or pins.GATEWAY_API_CRDS_URL
    return PlanStep(
        title=f"Install the Gateway API CRDs {pins.GATEWAY_API_VERSION}"
        + (f" from {local}" if local else ""),
        cluster=cluster.name,
        stage="platform",
        command=argv.kubectl(cluster, "apply", "--server-side", "--filename", source),
        skip_if_crds=CrdBundle(
            names=pins.GATEWAY_API_STANDARD_CRDS,
            version_annotation=pins.GATEWAY_API_BUNDLE_ANNOTATION,
            min_version=pins.GATEWAY_API_VERSION,
        ),
        downloads=[]
        if local
        else [
            Download(
                url=pins.GATEWAY_API_CRDS_URL,
                instead="pass --gateway-api-crds PATH (a CRD file or directory) or install them first",
            )
        ],
        wait=[
            crd_established("gateways.gateway.networking.k8s.io"),
            crd_established("httproutes.gateway.networking.k8s.io"),
        ],
    )
