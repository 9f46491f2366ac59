"""Pinned versions and per-build API facts the install plan is rendered from.

One table per fact, so a version bump is one edit and the tests assert against the same source the
plan uses. Every entry names where it comes from (istio-facts sections, upstream release notes).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Istio ------------------------------------------------------------------------------------------

ISTIO_MINOR = "1.27"
ISTIO_HELM_REPO = "https://istio-release.storage.googleapis.com/charts"  # istio-facts §1.2
# ztunnel's chart reads `.Values.network` from 1.27.3 on, `global.network` before (istio-facts §1.2).
ZTUNNEL_TOP_LEVEL_NETWORK_SINCE = (1, 27, 3)

# --- OSSM 3.2 (OLM) ---------------------------------------------------------------------------------

OSSM_PACKAGE = "servicemeshoperator3"  # istio-facts §0, §1.3
OSSM_CHANNEL = "stable-3.2"  # pins the minor; `stable` would follow 3.3+
REDHAT_CATALOG = "redhat-operators"
REDHAT_CATALOG_NAMESPACE = "openshift-marketplace"
# The CSV supports AllNamespaces only, so it lives in openshift-operators (global OperatorGroup) (§1.3).
OSSM_OPERATOR_NAMESPACE = "openshift-operators"
OSSM_OPERATOR_DEPLOYMENT = "servicemesh-operator3"
# Istio 1.27 patches each OSSM 3.2 patch serves. 3.2.0 ships only v1.27.3; the 3.2 branch head's CRD enum
# lists v1.27.9/.8/.5/.3 (istio-facts §0). Patches between are not individually documented, so any 3.2.x
# after 3.2.0 is allowed the branch-head set and the CSV wait proves the operator exists.
OSSM_320_ISTIO = ("1.27.3",)
OSSM_32X_ISTIO = ("1.27.3", "1.27.5", "1.27.8", "1.27.9")
# ZTunnel `sailoperator.io/v1` arrived in OSSM 3.2.1; 3.2.0 serves only v1alpha1 with `profile` (§0 trap 1).
OSSM_ZTUNNEL_V1_SINCE = (3, 2, 1)

# --- upstream Sail operator (kind / existing clusters) -------------------------------------------------

SAIL_HELM_REPO = "https://istio-ecosystem.github.io/sail-operator"
SAIL_OPERATOR_NAMESPACE = "sail-operator"
SAIL_OPERATOR_DEPLOYMENT = "sail-operator"


@dataclass(frozen=True)
class SailRelease:
    chart_version: str
    ztunnel_v1: bool
    source: str


# Upstream Sail releases that know each Istio 1.27 patch. ZTunnel v1 was cherry-picked to release-1.27
# after 1.27.3 was cut (istio-ecosystem/sail-operator#1385, 2025-11-25), so Sail 1.27.3 serves only
# v1alpha1 (+profile), like OSSM 3.2.0. Sail 1.29.x branched after #1365 and serves v1.
UPSTREAM_SAIL_FOR_ISTIO: dict[str, SailRelease] = {
    "1.27.3": SailRelease("1.27.3", False, "istio-ecosystem/sail-operator#1286 (release-1.27, Istio 1.27.3)"),
    "1.27.8": SailRelease("1.29.1", True, "istio-ecosystem/sail-operator#1678 (release-1.29 adds 1.27.8)"),
    "1.27.9": SailRelease("1.29.2", True, "istio-ecosystem/sail-operator#1828 (release-1.29 adds 1.27.9)"),
}

# --- Gateway API and the inference extension --------------------------------------------------------

GATEWAY_API_VERSION = "v1.3.0"  # the Gateway API release Istio 1.27 implements
GATEWAY_API_CRDS_URL = f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml"
# Every CRD of the standard channel carries the release it came from (config/crd/standard/*.yaml at v1.3.0:
# `gateway.networking.k8s.io/bundle-version: v1.3.0`, `gateway.networking.k8s.io/channel: standard`).
GATEWAY_API_BUNDLE_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
GATEWAY_API_STANDARD_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
)


@dataclass(frozen=True)
class GieBuild:
    """The inference-extension API an Istio build watches (istio-facts §0 trap 2, §7.1)."""

    group: str
    version: str
    crd_ref: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crds_kustomization(self) -> str:
        return f"github.com/kubernetes-sigs/gateway-api-inference-extension/config/crd?ref={self.crd_ref}"


GIE_UPSTREAM = GieBuild("inference.networking.x-k8s.io", "v1alpha2", "v0.5.1")  # upstream 1.27.x: GIE v0.5
GIE_OSSM = GieBuild("inference.networking.k8s.io", "v1", "v1.0.1")  # OSSM 1.27.3-redhat+: GIE v1.0

# --- cert-manager and istio-csr (istio-facts §6) -----------------------------------------------------

JETSTACK_HELM_REPO = "https://charts.jetstack.io"
CERT_MANAGER_CHART_VERSION = "v1.18.2"
ISTIO_CSR_CHART_VERSION = "v0.15.0"  # istio-facts §6.2
CERT_MANAGER_NAMESPACE = "cert-manager"
# OpenShift: the cert-manager Operator for Red Hat OpenShift manages istio-csr (istio-facts §6.1).
OCP_CERT_MANAGER_PACKAGE = "openshift-cert-manager-operator"
OCP_CERT_MANAGER_CHANNEL = "stable-v1"
OCP_CERT_MANAGER_OPERATOR_NAMESPACE = "cert-manager-operator"
OCP_ISTIO_CSR_NAMESPACE = "istio-csr"

# --- kind ----------------------------------------------------------------------------------------------

# Node images published with kind v0.30.0 (the kind the tools module pins), by digest. Istio 1.27 is
# supported on Kubernetes 1.29-1.33, and OCP 4.20 runs 1.33, so 1.33 is the default: native sidecars
# are on there too (kubelet >= 1.33, istio-facts §0 trap 3), as on the product.
KIND_NODE_IMAGES: dict[str, str] = {
    "1.33": "kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2",
    "1.32": "kindest/node:v1.32.8@sha256:abd489f042d2b644e2d033f5c2d900bc707798d075e8186cb65e3f1367a9d5a1",
    "1.34": "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
}
DEFAULT_KIND_KUBERNETES = "1.33"
KIND_WORKERS = 2  # cross-node traffic for ambient (ztunnel per node) and room for benchmark pinning
# cloud-provider-kind v0.6.0 only provides LoadBalancer addresses; later releases also install Gateway API
# CRDs and run their own Gateway controller, which would fight Istio over the same CRDs.
CLOUD_PROVIDER_KIND_IMAGE = "registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.6.0"
CLOUD_PROVIDER_KIND_CONTAINER = "meshproof-cloud-provider-kind"
METRICS_SERVER_HELM_REPO = "https://kubernetes-sigs.github.io/metrics-server/"
METRICS_SERVER_CHART_VERSION = "3.12.2"

# --- OpenShift ambient prerequisites (istio-facts §1.4 "Ambient prerequisites on OpenShift") -------------

OCP_MIN_FOR_AMBIENT = (4, 19)  # Gateway API CRDs ship with 4.19+; OSSM 3.2 ambient GA needs it
OCP_MIN_FOR_GATEWAY_API = (4, 19)


def parse_version(text: str) -> tuple[int, ...]:
    """`v1.27.9` / `1.27.9` / `4.19.3-rc.1` -> (1, 27, 9); non-numeric tails are dropped."""
    parts: list[int] = []
    for piece in text.strip().lstrip("v").split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
