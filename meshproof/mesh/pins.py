"""Pinned versions and per-build API facts the install plan is rendered from.

One table per fact, so a version bump is one edit and the tests assert against the same source the
plan uses. Every entry names where it comes from (istio-facts sections, upstream release notes).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Istio ------------------------------------------------------------------------------------------

ISTIO_MINOR = "1.27"
ISTIO_HELM_REPO = "https://istio-release.storage.googleapis.com/charts"  # istio-facts §1.2
# ztunnel's chart reads `.Values.network` from 1.27.2 on, `global.network` before: the key arrived with
# "Flatten network value in ztunnel charts" (istio/istio#57881), first in the 1.27.2 tag's values.yaml.
ZTUNNEL_TOP_LEVEL_NETWORK_SINCE = (1, 27, 2)

# --- OSSM 3.2 (OLM) ---------------------------------------------------------------------------------

OSSM_PACKAGE = "servicemeshoperator3"  # istio-facts §0, §1.3
OSSM_CHANNEL = "stable-3.2"  # pins the minor; `stable` would follow 3.3+
REDHAT_CATALOG = "redhat-operators"
REDHAT_CATALOG_NAMESPACE = "openshift-marketplace"
# The CSV supports AllNamespaces only, so it lives in openshift-operators (global OperatorGroup) (§1.3).
OSSM_OPERATOR_NAMESPACE = "openshift-operators"
OSSM_OPERATOR_DEPLOYMENT = "servicemesh-operator3"
# Istio 1.27 patches each OSSM 3.2 release offers: the 1.27 entries of the `spec.version` enum of its
# Istio CRD (sailoperator.io_istios.yaml). 3.2.0 (branch release-3.2.0) and the release-3.2 branch head
# (3.2.9) are read from the CRDs themselves in ../shared/upstream, and tests/unit/test_pins_ossm.py keeps
# this table equal to them; the releases between follow the same enum at their tags (issue 9): 3.2.2
# added 1.27.5, 3.2.3 added 1.27.8, 3.2.5 added 1.27.9. The product cannot read ../shared at run time,
# so the table lives here.
_OSSM_ISTIO_ADDED = {"3.2.0": "1.27.3", "3.2.2": "1.27.5", "3.2.3": "1.27.8", "3.2.5": "1.27.9"}
OSSM_RELEASES = tuple(f"3.2.{patch}" for patch in range(10))  # "3.2.<n>"; 3.2.9 only as the branch head
OSSM_ISTIO_VERSIONS: dict[str, tuple[str, ...]] = {
    release: tuple(istio for since, istio in _OSSM_ISTIO_ADDED.items() if int(since[4:]) <= int(release[4:]))
    for release in OSSM_RELEASES
}
# The newest tagged OSSM 3.2 release (3.2.9 exists only as the release-3.2 branch head): the default.
OSSM_NEWEST_RELEASE = "3.2.8"


def istio_versions_for_ossm(ossm_version: str) -> tuple[str, ...]:
    """The Istio 1.27 patches OSSM `ossm_version` offers, oldest first; ValueError for an unknown one."""
    offered = OSSM_ISTIO_VERSIONS.get(ossm_version.lstrip("v"))
    if offered is None:
        known = ", ".join(OSSM_RELEASES)
        raise ValueError(f"OSSM {ossm_version} is not an OSSM 3.2 release meshproof knows (known: {known})")
    return offered


def newest_istio_for_ossm(ossm_version: str) -> str:
    """The newest Istio patch OSSM `ossm_version` offers (what its `v1.27-latest` resolves to)."""
    return istio_versions_for_ossm(ossm_version)[-1]


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

    def crd_url(self, plural: str) -> str:
        """One CRD file of this release (raw GitHub), e.g. crd_url("inferencepools")."""
        return (
            "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api-inference-extension/"
            f"{self.crd_ref}/config/crd/bases/{self.group}_{plural}.yaml"
        )


# The GIE release each build is compiled against: upstream Istio 1.27.x go.mod requires
# sigs.k8s.io/gateway-api-inference-extension v0.5.0 (istio/istio@1.27.9 go.mod); the OSSM fork's v1.0
# backport builds against v1.0.0 (its release-1.27.3 test CRD bundle says bundle-version v1.0.0).
GIE_UPSTREAM = GieBuild("inference.networking.x-k8s.io", "v1alpha2", "v0.5.0")  # upstream 1.27.x: GIE v0.5
GIE_OSSM = GieBuild("inference.networking.k8s.io", "v1", "v1.0.0")  # OSSM 1.27.3-redhat+: GIE v1.0

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
