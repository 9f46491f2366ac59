"""MeshSpec: the one description of the mesh a run installs, derived from the RunConfig.

Every installer, add-on and fixture renders from this object, so "what gets installed" has exactly one
answer. Impossible combinations are refused here, before anything touches a cluster, with one line that
says why and what to change (`UnsupportedCombination`). The fingerprint of the spec is stored in each
cluster so a reused cluster with a different install is noticed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from meshproof.config import ConfigError, Feature, RunConfig
from meshproof.mesh import pins

RevisionStrategy = Literal["InPlace", "RevisionBased"]
Platform = Literal["kubernetes", "openshift"]
Build = Literal["upstream", "ossm"]

TRUST_DOMAIN = "cluster.local"
ISTIO_NAMESPACE = "istio-system"
MESH_ID = "mesh1"
# Sail's own defaults for the component namespaces (istio-facts §1.4).
SAIL_CNI_NAMESPACE = "istio-cni"
SAIL_ZTUNNEL_NAMESPACE = "ztunnel"
# The OpenShift platform profile puts CNI and ztunnel into kube-system (istio-facts §1.1, §1.2, §0 trap 11).
OPENSHIFT_NODE_AGENT_NAMESPACE = "kube-system"


# MeshSpec fields that say how this machine reaches or fetches things, not what the cluster runs.
LOCAL_FIELDS: dict[str, bool] = {"gateway_api_crds": True, "offline": True}


class UnsupportedCombination(ConfigError):
    """The options ask for a mesh that cannot exist; the message says why and what to change."""


class KindNodes(BaseModel):
    """How one kind cluster is built (provider kind only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_image: str
    workers: int
    pod_subnet: str
    service_subnet: str


class ClusterSpec(BaseModel):
    """One cluster of the mesh: its name in the plan and fixtures, its kube context, its mesh network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    context: str | None = None
    network: str | None = None
    kind: KindNodes | None = None


class SailOperator(BaseModel):
    """Which Sail operator installs the CRs and which ZTunnel API it serves (istio-facts §0 trap 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["olm", "helm"]
    version: str  # OSSM version (olm) or upstream Sail chart version (helm)
    namespace: str
    deployment: str
    ztunnel_api_version: str

    @property
    def ztunnel_needs_profile(self) -> bool:
        # v1alpha1 ZTunnel carries `spec.profile`; v1 has no such field (istio-facts §0 trap 1).
        return self.ztunnel_api_version.endswith("/v1alpha1")


class MeshSpec(BaseModel):
    """Everything that decides what an install renders. Frozen; build it with `from_config`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["kind", "openshift", "existing"]
    mode: Literal["sidecar", "ambient"]
    installer: Literal["istioctl", "helm", "sail"]
    platform: Platform
    build: Build
    istio_version: str
    ossm_version: str | None
    sail: SailOperator | None
    features: tuple[Feature, ...]
    revision_strategy: RevisionStrategy
    revision: str
    trust_domain: str
    istio_namespace: str
    cni_namespace: str | None
    ztunnel_namespace: str | None
    mesh_id: str | None
    gie_api_version: str | None
    clusters: tuple[ClusterSpec, ...]
    # How this machine gets things, not what is installed: left out of the fingerprint (`LOCAL_FIELDS`).
    gateway_api_crds: str | None = None  # a local file or directory of Gateway API CRDs, instead of the URL
    offline: bool = False  # no step may download anything

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: RunConfig, *, revision_strategy: RevisionStrategy | None = None) -> MeshSpec:
        """Derive the spec from the run's options; raises UnsupportedCombination (one line) when impossible.

        The revision strategy comes from the argument, else from `cfg.revision_strategy` when the config
        has such a field, else InPlace.
        """
        strategy: RevisionStrategy = revision_strategy or cfg.revision_strategy
        features = tuple(sorted(cfg.features, key=lambda f: f.value))
        _refuse_impossible(cfg, strategy)
        platform: Platform = "openshift" if cfg.provider == "openshift" else "kubernetes"
        # OSSM's operator installs Red Hat's Istio build; everything else here is upstream Istio.
        build: Build = "ossm" if (cfg.installer == "sail" and cfg.provider == "openshift") else "upstream"
        sail = _sail_operator(cfg) if cfg.installer == "sail" else None
        cni_ns, ztunnel_ns = _node_agent_namespaces(cfg, platform)
        gie = (
            (pins.GIE_OSSM if build == "ossm" else pins.GIE_UPSTREAM) if Feature.GIE in cfg.features else None
        )
        return cls(
            provider=cfg.provider,
            mode=cfg.mode,
            installer=cfg.installer,
            platform=platform,
            build=build,
            istio_version=cfg.istio_version,
            ossm_version=cfg.ossm_version if build == "ossm" else None,
            sail=sail,
            features=features,
            revision_strategy=strategy,
            revision=_revision_name(strategy, cfg.istio_version),
            trust_domain=TRUST_DOMAIN,
            istio_namespace=ISTIO_NAMESPACE,
            cni_namespace=cni_ns,
            ztunnel_namespace=ztunnel_ns,
            mesh_id=MESH_ID if Feature.MULTICLUSTER in cfg.features else None,
            gie_api_version=gie.api_version if gie else None,
            clusters=_clusters(cfg),
            gateway_api_crds=str(cfg.gateway_api_crds) if cfg.gateway_api_crds else None,
            offline=cfg.offline,
        )

    # --- identity -------------------------------------------------------------------------------

    def canonical_json(self) -> str:
        """The spec as canonical JSON (sorted keys, no whitespace). Kube contexts and `LOCAL_FIELDS` are left
        out: they name how this machine reaches a cluster or fetches files, not what is installed in it."""
        data = self.model_dump(mode="json", exclude={"clusters": {"__all__": {"context"}}, **LOCAL_FIELDS})
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    # --- conveniences -----------------------------------------------------------------------------

    def has(self, feature: Feature | str) -> bool:
        return Feature(feature) in self.features

    @property
    def ambient(self) -> bool:
        return self.mode == "ambient"

    @property
    def cni_enabled(self) -> bool:
        return self.cni_namespace is not None

    @property
    def primary(self) -> ClusterSpec:
        return self.clusters[0]

    @property
    def multicluster(self) -> bool:
        return len(self.clusters) > 1

    @property
    def istiod_deployment(self) -> str:
        # Sail names the istiod Deployment after the revision unless the revision is `default`.
        return "istiod" if self.revision == "default" else f"istiod-{self.revision}"

    @property
    def sail_version(self) -> str:
        """The Sail `spec.version` string for the Istio version."""
        return f"v{self.istio_version}"

    def summary(self) -> str:
        feats = ",".join(f.value for f in self.features) or "none"
        ossm = f" ossm={self.ossm_version}" if self.ossm_version else ""
        return (
            f"provider={self.provider} installer={self.installer} mode={self.mode} istio={self.istio_version}"
            f"{ossm} build={self.build} features={feats} revision={self.revision} ({self.revision_strategy})"
        )

    def public_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- the refusals ------------------------------------------------------------------------------------


def _refuse_impossible(cfg: RunConfig, strategy: RevisionStrategy) -> None:
    """Raise UnsupportedCombination for the first rule the options break. Each message is one line."""
    version = pins.parse_version(cfg.istio_version)
    if version[:2] != pins.parse_version(pins.ISTIO_MINOR):
        raise UnsupportedCombination(
            f"--istio-version {cfg.istio_version}: meshproof targets Istio {pins.ISTIO_MINOR}.x "
            "(the Istio in OSSM 3.2); pass a 1.27 patch such as 1.27.9"
        )
    if cfg.mode == "ambient" and Feature.NFTABLES in cfg.features:
        # istio-facts §0 trap 13, §5
        raise UnsupportedCombination(
            "nftables redirection is sidecar-only in Istio 1.27 (ambient nftables arrived in 1.28); "
            "drop --features nftables or use --mode sidecar"
        )
    if strategy == "RevisionBased" and cfg.installer != "sail":
        raise UnsupportedCombination(
            "revision strategy RevisionBased is the Sail operator's Istio.spec.updateStrategy; "
            "use --installer sail or the InPlace strategy"
        )
    if cfg.installer == "istioctl":
        _refuse_istioctl(cfg)
    if cfg.installer == "sail":
        _refuse_sail(cfg)
    if Feature.MULTICLUSTER in cfg.features:
        _refuse_multicluster(cfg)
    if Feature.ISTIO_CSR in cfg.features and cfg.mode == "ambient" and cfg.provider == "openshift":
        # istio-facts §6.1: the IstioCSR API (operator.openshift.io/v1alpha1) has no field for ztunnel's
        # trusted node accounts, so ztunnel cannot get certificates (openshift/cert-manager-operator#281).
        raise UnsupportedCombination(
            "istio-csr with ambient on OpenShift needs ztunnel node-account impersonation, which the "
            "OpenShift IstioCSR API does not offer; use --mode sidecar or --provider kind"
        )


def _refuse_istioctl(cfg: RunConfig) -> None:
    from meshproof.tools import ISTIOCTL_VERSION  # the pinned binary decides what istioctl installs

    if cfg.istio_version != ISTIOCTL_VERSION:
        raise UnsupportedCombination(
            f"--installer istioctl installs the version of the istioctl binary (pinned {ISTIOCTL_VERSION}), "
            f"not {cfg.istio_version}; use --installer helm for other patches"
        )


def _refuse_sail(cfg: RunConfig) -> None:
    if cfg.provider == "openshift":
        ossm = pins.parse_version(cfg.ossm_version)
        if ossm[:2] != (3, 2):
            raise UnsupportedCombination(
                f"--ossm-version {cfg.ossm_version}: meshproof targets OSSM 3.2 (servicemeshoperator3 v3.2.x)"
            )
        try:
            offered = pins.istio_versions_for_ossm(cfg.ossm_version)
        except ValueError as exc:
            raise UnsupportedCombination(f"--ossm-version {cfg.ossm_version}: {exc}") from None
        if cfg.istio_version not in offered:
            raise UnsupportedCombination(
                f"OSSM {cfg.ossm_version} does not offer Istio {cfg.istio_version}: it offers "
                f"{', '.join(offered)} (its Istio CRD's version enum); "
                f"pass --istio-version {offered[-1]} or leave it out"
            )
        return
    if cfg.istio_version not in pins.UPSTREAM_SAIL_FOR_ISTIO:
        known = ", ".join(sorted(pins.UPSTREAM_SAIL_FOR_ISTIO))
        raise UnsupportedCombination(
            f"no pinned upstream Sail operator release installs Istio {cfg.istio_version} on "
            f"--provider {cfg.provider}; use --istio-version {known.split(', ')[-1]} (known: {known})"
        )


def _refuse_multicluster(cfg: RunConfig) -> None:
    if cfg.provider != "kind" and len(cfg.contexts) < 2:
        raise UnsupportedCombination(
            f"--features multicluster on --provider {cfg.provider} needs two --context values, "
            "one per cluster"
        )
    if cfg.mode == "ambient" and cfg.installer == "sail" and cfg.provider == "openshift":
        # istio-facts §8.1: Technology Preview only from OSSM 3.3
        raise UnsupportedCombination(
            "ambient multicluster is not supported by OSSM 3.2 (Technology Preview from 3.3); "
            "use --mode sidecar for multicluster on OpenShift"
        )
    if Feature.ISTIO_CSR in cfg.features:
        raise UnsupportedCombination(
            "istio-csr with multicluster needs one cert-manager CA shared by every cluster, which meshproof "
            "does not set up; drop one of the two features"
        )


# --- derived values ----------------------------------------------------------------------------------


def _sail_operator(cfg: RunConfig) -> SailOperator:
    if cfg.provider == "openshift":
        v1 = pins.parse_version(cfg.ossm_version) >= pins.OSSM_ZTUNNEL_V1_SINCE
        return SailOperator(
            source="olm",
            version=cfg.ossm_version,
            namespace=pins.OSSM_OPERATOR_NAMESPACE,
            deployment=pins.OSSM_OPERATOR_DEPLOYMENT,
            ztunnel_api_version="sailoperator.io/v1" if v1 else "sailoperator.io/v1alpha1",
        )
    release = pins.UPSTREAM_SAIL_FOR_ISTIO[cfg.istio_version]
    return SailOperator(
        source="helm",
        version=release.chart_version,
        namespace=pins.SAIL_OPERATOR_NAMESPACE,
        deployment=pins.SAIL_OPERATOR_DEPLOYMENT,
        ztunnel_api_version="sailoperator.io/v1" if release.ztunnel_v1 else "sailoperator.io/v1alpha1",
    )


def _node_agent_namespaces(cfg: RunConfig, platform: Platform) -> tuple[str | None, str | None]:
    """Where istio-cni and ztunnel run, or None when the install has no such component."""
    ambient = cfg.mode == "ambient"
    if cfg.installer == "sail":
        # Sail always installs IstioCNI (OSSM's minimal sidecar install has it too, istio-facts §1.4).
        return SAIL_CNI_NAMESPACE, (SAIL_ZTUNNEL_NAMESPACE if ambient else None)
    node_ns = OPENSHIFT_NODE_AGENT_NAMESPACE if platform == "openshift" else ISTIO_NAMESPACE
    # CNI: always in ambient; mandatory on OpenShift (istio-facts §1.2); and with nftables, whose value goes
    # to both the control plane and the CNI (istio-facts §5).
    cni = ambient or platform == "openshift" or Feature.NFTABLES in cfg.features
    return (node_ns if cni else None), (node_ns if ambient else None)


def _revision_name(strategy: RevisionStrategy, istio_version: str) -> str:
    # InPlace: the revision is named after the Istio CR (`default`); RevisionBased: `<name>-v1-27-9`
    # (istio-facts §1.4). istioctl/helm installs here are unrevisioned, i.e. the default revision.
    if strategy == "InPlace":
        return "default"
    return "default-v" + istio_version.replace(".", "-")


def _clusters(cfg: RunConfig) -> tuple[ClusterSpec, ...]:
    multi = Feature.MULTICLUSTER in cfg.features
    if cfg.provider == "kind":
        count = 2 if multi else 1
        names = [f"{cfg.cluster_name}-{i + 1}" for i in range(count)] if multi else [cfg.cluster_name]
        image = pins.KIND_NODE_IMAGES[pins.DEFAULT_KIND_KUBERNETES]
        return tuple(
            ClusterSpec(
                name=name,
                context=f"kind-{name}",
                network=f"network{i + 1}" if multi else None,
                # Distinct pod and service ranges so multicluster endpoints never collide; cluster 1 keeps
                # kind's defaults (10.244.0.0/16, 10.96.0.0/16).
                kind=KindNodes(
                    node_image=image,
                    workers=pins.KIND_WORKERS,
                    pod_subnet=f"10.{244 + i}.0.0/16",
                    service_subnet=f"10.{96 + i}.0.0/16",
                ),
            )
            for i, name in enumerate(names)
        )
    contexts: list[str | None] = list(cfg.contexts) or [None]
    if not multi:
        contexts = contexts[:1]
    return tuple(
        ClusterSpec(name=f"cluster{i + 1}", context=ctx, network=f"network{i + 1}" if multi else None)
        for i, ctx in enumerate(contexts)
    )
