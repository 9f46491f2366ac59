"""The install values a MeshSpec implies, shaped for each installer.

The same facts go to three shapes: IstioOperator `spec.values` (istioctl), each Helm chart's own values
(helm), and the Sail CRs' `spec.values` (sail). The facts live once here (`ControlPlaneFacts`); the
`*_values` functions only place them where each installer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshproof.config import Feature
from meshproof.mesh import pins
from meshproof.mesh.spec import ClusterSpec, MeshSpec

Values = dict[str, Any]

# istio-csr's gRPC service (istio-facts §6.1 step 5, §6.2): the upstream chart runs in cert-manager's
# namespace; the OpenShift operator deploys it into the IstioCSR CR's namespace.
ISTIO_CSR_SERVICE = "cert-manager-istio-csr"


def istio_csr_address(spec: MeshSpec) -> str:
    namespace = pins.OCP_ISTIO_CSR_NAMESPACE if spec.platform == "openshift" else pins.CERT_MANAGER_NAMESPACE
    return f"{ISTIO_CSR_SERVICE}.{namespace}.svc:443"


@dataclass(frozen=True)
class ControlPlaneFacts:
    """What one cluster's install must say, independent of the installer."""

    istiod_env: dict[str, str] = field(default_factory=dict)  # all env values are strings (istio-facts §1.4)
    global_values: Values = field(default_factory=dict)
    cni_global: Values = field(default_factory=dict)
    ztunnel: Values = field(default_factory=dict)  # the ztunnel chart's own top-level keys
    ztunnel_global: Values = field(default_factory=dict)
    trusted_ztunnel_namespace: str | None = None


def control_plane_facts(spec: MeshSpec, cluster: ClusterSpec) -> ControlPlaneFacts:
    env: dict[str, str] = {}
    glob: Values = {}
    cni_glob: Values = {}
    ztunnel: Values = {}
    ztunnel_glob: Values = {}
    if spec.has(Feature.GIE):
        # The real flag; the 1.27 release notes name a wrong one (istio-facts §0 trap 4, §7.2).
        env["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] = "true"
    if spec.has(Feature.ISTIO_CSR):
        # istiod stops signing; istio-csr does (istio-facts §6.1 step 5, §6.2).
        env["ENABLE_CA_SERVER"] = "false"
        glob["caAddress"] = istio_csr_address(spec)
        if spec.ambient:
            ztunnel["caAddress"] = istio_csr_address(spec)
    if spec.has(Feature.NFTABLES):
        # Both the control plane (injection template) and the CNI plugin read it (istio-facts §5).
        glob["nativeNftables"] = True
        cni_glob["nativeNftables"] = True
    if spec.multicluster:
        assert spec.mesh_id is not None and cluster.network is not None
        glob["meshID"] = spec.mesh_id
        glob["multiCluster"] = {"clusterName": cluster.name}
        glob["network"] = cluster.network
        if spec.ambient:
            env["AMBIENT_ENABLE_MULTI_NETWORK"] = "true"  # istio-facts §8.1
            ztunnel["multiCluster"] = {"clusterName": cluster.name}
            if pins.parse_version(spec.istio_version) >= pins.ZTUNNEL_TOP_LEVEL_NETWORK_SINCE:
                ztunnel["network"] = cluster.network
            else:
                ztunnel_glob["network"] = (
                    cluster.network
                )  # before 1.27.2 (pins.ZTUNNEL_TOP_LEVEL_NETWORK_SINCE)
    if spec.platform == "openshift" and spec.installer != "sail":
        # Every chart needs the platform on OpenShift; Sail sets it itself (istio-facts §1.2, §1.4).
        for target in (glob, cni_glob, ztunnel_glob):
            target["platform"] = "openshift"
    return ControlPlaneFacts(
        istiod_env=env,
        global_values=glob,
        cni_global=cni_glob,
        ztunnel=ztunnel,
        ztunnel_global=ztunnel_glob,
        # Set explicitly whenever ztunnel exists: a mismatch breaks ztunnel's certificates
        # (istio-facts §0 trap 11, §1.4 "Known bug").
        trusted_ztunnel_namespace=spec.ztunnel_namespace if spec.ambient else None,
    )


# --- istioctl -----------------------------------------------------------------------------------------


def istioctl_profile(spec: MeshSpec) -> str:
    # istio-facts §1.1: default / ambient; the OpenShift profiles add the CNI in kube-system and the platform.
    if spec.platform == "openshift":
        return "openshift-ambient" if spec.ambient else "openshift"
    return "ambient" if spec.ambient else "default"


def istioctl_components(spec: MeshSpec) -> Values:
    components: Values = {}
    if spec.cni_enabled:
        components["cni"] = {"enabled": True, "namespace": spec.cni_namespace}
    if spec.ambient:
        components["ztunnel"] = {"enabled": True, "namespace": spec.ztunnel_namespace}
    return components


def istioctl_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = {}
    glob = {**facts.global_values, **facts.ztunnel_global}
    if glob:
        values["global"] = glob
    pilot: Values = {}
    if facts.istiod_env:
        pilot["env"] = dict(facts.istiod_env)
    if facts.trusted_ztunnel_namespace:
        pilot["trustedZtunnelNamespace"] = facts.trusted_ztunnel_namespace
    if spec.cni_enabled and not spec.ambient:
        pilot["cni"] = {"enabled": True}  # sidecar + CNI: injection uses istio-validation, not istio-init
    if pilot:
        values["pilot"] = pilot
    if facts.ztunnel:
        values["ztunnel"] = dict(facts.ztunnel)
    return values


# --- helm ---------------------------------------------------------------------------------------------


def helm_base_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    platform = facts.global_values.get("platform")
    return {"global": {"platform": platform}} if platform else {}


def helm_istiod_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = {}
    if spec.ambient:
        values["profile"] = "ambient"  # istio-facts §1.2
    if facts.global_values:
        values["global"] = dict(facts.global_values)
    if facts.istiod_env:
        values["env"] = dict(facts.istiod_env)  # top-level `env` in the istiod chart (istio-facts §7.2)
    if facts.trusted_ztunnel_namespace:
        values["trustedZtunnelNamespace"] = facts.trusted_ztunnel_namespace  # top-level in the istiod chart
    if spec.cni_enabled and not spec.ambient:
        values["cni"] = {"enabled": True}
    return values


def helm_cni_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = {}
    if spec.ambient:
        values["profile"] = "ambient"  # istio-facts §1.2
    if facts.cni_global:
        values["global"] = dict(facts.cni_global)
    return values


def helm_ztunnel_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = dict(facts.ztunnel)
    if facts.ztunnel_global:
        values["global"] = dict(facts.ztunnel_global)
    return values


# --- sail ---------------------------------------------------------------------------------------------


def sail_istio_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = {}
    if facts.global_values:
        values["global"] = dict(facts.global_values)
    pilot: Values = {}
    if facts.istiod_env:
        pilot["env"] = dict(facts.istiod_env)
    if facts.trusted_ztunnel_namespace:
        # Sail's ZTunnel defaults to namespace `ztunnel`; the OpenShift platform profile trusts kube-system
        # (istio-facts §0 trap 11), so this must be set for the two to agree.
        pilot["trustedZtunnelNamespace"] = facts.trusted_ztunnel_namespace
    if spec.cni_enabled and not spec.ambient:
        # Sail installs IstioCNI, but istiod's chart defaults pilot.cni.enabled to false; only the
        # OpenShift platform profile turns it on (istio-1.27.9 manifests/helm-profiles/
        # platform-openshift.yaml; Sail resources/v1.27.9 istiod values.yaml). Without it, on kind,
        # injected pods would still get istio-init instead of relying on the CNI.
        pilot["cni"] = {"enabled": True}
    if pilot:
        values["pilot"] = pilot
    return values


def sail_cni_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    return {"global": dict(facts.cni_global)} if facts.cni_global else {}


def sail_ztunnel_values(spec: MeshSpec, cluster: ClusterSpec) -> Values:
    facts = control_plane_facts(spec, cluster)
    values: Values = {}
    if facts.ztunnel:
        values["ztunnel"] = dict(facts.ztunnel)  # istio-facts §1.4 ZTunnel spec.values.ztunnel.*
    if facts.ztunnel_global:
        values["global"] = dict(facts.ztunnel_global)
    return values
