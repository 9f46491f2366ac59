"""openshift provider: an existing OpenShift cluster from a kubeconfig.

Nothing is created at the cluster level; the OSSM operator comes through OLM as part of the Sail install
(`meshproof.mesh.olm`). Before anything is installed the live cluster is checked: its OCP version, and for
ambient the OVN-Kubernetes local gateway mode (istio-facts §0 trap 11, §1.4 "Ambient prerequisites").
The judging is pure (`openshift_problems`) so it is tested on realistic objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshproof.clusters.base import ProvisionError
from meshproof.config import Feature, RunConfig
from meshproof.mesh import pins
from meshproof.mesh.model import PlanStep
from meshproof.mesh.spec import MeshSpec

if TYPE_CHECKING:
    from meshproof.kube import Cluster

CLUSTER_VERSION = ("config.openshift.io/v1", "ClusterVersion", "version")
NETWORK_OPERATOR = ("operator.openshift.io/v1", "Network", "cluster")


def ocp_version(cluster_version: Mapping[str, Any] | None) -> str | None:
    """The version the cluster runs: the newest Completed history entry, else the desired version."""
    if not cluster_version:
        return None
    status = cluster_version.get("status") or {}
    for entry in status.get("history") or []:
        if entry.get("state") == "Completed" and entry.get("version"):
            return str(entry["version"])
    desired = (status.get("desired") or {}).get("version")
    return str(desired) if desired else None


def routing_via_host(network: Mapping[str, Any] | None) -> bool:
    """OVN-Kubernetes local gateway mode (spec.defaultNetwork.ovnKubernetesConfig.gatewayConfig)."""
    spec = (network or {}).get("spec") or {}
    ovn = (spec.get("defaultNetwork") or {}).get("ovnKubernetesConfig") or {}
    return bool((ovn.get("gatewayConfig") or {}).get("routingViaHost"))


def openshift_problems(
    spec: MeshSpec, *, version: str | None, network: Mapping[str, Any] | None
) -> list[str]:
    """Why this OpenShift cluster cannot run the requested mesh; empty when it can. One line each."""
    problems: list[str] = []
    parsed = pins.parse_version(version) if version else ()
    shown = version or "unknown"
    if spec.ambient:
        if not parsed or parsed[:2] < pins.OCP_MIN_FOR_AMBIENT:
            want = ".".join(map(str, pins.OCP_MIN_FOR_AMBIENT))
            problems.append(
                f"ambient on OpenShift needs OCP {want}+ (found {shown}): the Gateway API CRDs waypoints use "
                "ship with 4.19; upgrade the cluster or use --mode sidecar"
            )
        if not routing_via_host(network):
            problems.append(
                "ambient on OpenShift needs OVN-Kubernetes local gateway mode so kubelet probes reach "
                "ambient pods (network.operator.openshift.io/cluster spec.defaultNetwork.ovnKubernetesConfig."
                "gatewayConfig.routingViaHost: true); enable it or use --mode sidecar"
            )
    if spec.has(Feature.GIE) and (not parsed or parsed[:2] < pins.OCP_MIN_FOR_GATEWAY_API):
        problems.append(
            f"--features gie needs the Gateway API CRDs that OCP 4.19+ ships (found {shown}); "
            "upgrade the cluster or drop gie"
        )
    return problems


class OpenShiftProvider:
    name = "openshift"
    owns_clusters = False

    def plan_steps(self, spec: MeshSpec) -> list[PlanStep]:
        return []

    def prerequisites(self, spec: MeshSpec) -> list[str]:
        checks = ["the OCP version (ClusterVersion version) is read and reported"]
        if spec.ambient:
            checks.append(
                "ambient: OCP 4.19+ and OVN-Kubernetes routingViaHost: true, else the run is refused"
            )
        if spec.has(Feature.GIE):
            checks.append("gie: OCP 4.19+ (Gateway API CRDs), else the run is refused")
        return checks

    def before_provision(self, cfg: RunConfig, spec: MeshSpec) -> None:
        return None

    def check_clusters(self, spec: MeshSpec, clusters: Mapping[str, Cluster]) -> dict[str, str]:
        facts: dict[str, str] = {}
        for name, cluster in clusters.items():
            version = ocp_version(cluster.get(*CLUSTER_VERSION))
            if version is None:
                raise ProvisionError(
                    f"cluster {name} has no ClusterVersion 'version': it does not look like OpenShift; "
                    "use --provider existing for other clusters"
                )
            network = cluster.get(*NETWORK_OPERATOR)
            problems = openshift_problems(spec, version=version, network=network)
            if problems:
                raise ProvisionError(f"cluster {name}: {problems[0]}")
            gateway = "local" if routing_via_host(network) else "shared"
            facts[name] = f"OCP {version}, OVN-Kubernetes {gateway} gateway mode"
        return facts
