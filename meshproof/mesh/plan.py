"""build_plan: the ordered steps that take a run from nothing to an installed, recorded mesh.

Order, per cluster unless noted: the provider's cluster and platform steps; the mesh namespaces (with the
network label multicluster needs before install); add-ons the control plane depends on (inference-extension
CRDs, cert-manager + istio-csr, the plug-in CA); the installer's steps; add-ons that need the control plane
(east-west gateways); across clusters, remote secrets; last, the install record on every cluster.
"""

from __future__ import annotations

from meshproof.clusters import provider_for
from meshproof.config import RunConfig
from meshproof.mesh import addons, installers
from meshproof.mesh.model import (
    CONFIG_FILE,
    ISTIO_OPERATOR_FILE,
    STAGES,
    VALUES_FILE,
    InstallPlan,
    PlanStep,
    Stage,
    WaitSpec,
)
from meshproof.mesh.record import record_step
from meshproof.mesh.spec import OPENSHIFT_NODE_AGENT_NAMESPACE, ClusterSpec, MeshSpec, RevisionStrategy
from meshproof.mesh.suite_steps import suite_steps
from meshproof.mesh.templates import render_one

__all__ = [
    "CONFIG_FILE",
    "ISTIO_OPERATOR_FILE",
    "STAGES",
    "VALUES_FILE",
    "InstallPlan",
    "PlanStep",
    "Stage",
    "WaitSpec",
    "build_plan",
    "plan_for_spec",
]


def build_plan(cfg: RunConfig, *, revision_strategy: RevisionStrategy | None = None) -> InstallPlan:
    """The plan for a run's options; raises UnsupportedCombination (one line) for impossible ones."""
    return plan_for_spec(MeshSpec.from_config(cfg, revision_strategy=revision_strategy))


def plan_for_spec(spec: MeshSpec) -> InstallPlan:
    provider = provider_for(spec.provider)
    steps: list[PlanStep] = list(provider.plan_steps(spec))
    for cluster in spec.clusters:
        steps.append(namespaces_step(spec, cluster))
        steps.extend(addons.before_control_plane(spec, cluster))
        steps.extend(installers.installer_steps(spec, cluster))
        steps.extend(addons.after_control_plane(spec, cluster))
    steps.extend(addons.across_clusters(spec))
    steps.extend(record_step(spec, cluster) for cluster in spec.clusters)
    return InstallPlan(
        spec=spec, steps=steps, prerequisites=provider.prerequisites(spec), suite_steps=suite_steps(spec)
    )


def mesh_namespaces(spec: MeshSpec) -> list[str]:
    """The namespaces the install creates (kube-system already exists and is never touched)."""
    names = [spec.istio_namespace]
    for ns in (spec.cni_namespace, spec.ztunnel_namespace):
        if ns and ns not in names and ns != OPENSHIFT_NODE_AGENT_NAMESPACE:
            names.append(ns)
    return names


def namespaces_step(spec: MeshSpec, cluster: ClusterSpec) -> PlanStep:
    docs = []
    for name in mesh_namespaces(spec):
        labels: dict[str, str] = {}
        if name == spec.istio_namespace and cluster.network:
            # The system namespace names the cluster's network before istiod starts (istio-facts §8.1, §8.2).
            labels["topology.istio.io/network"] = cluster.network
        docs.append(render_one("mesh/namespace.yaml.j2", name=name, labels=labels))
    return PlanStep(title="Create the mesh namespaces", cluster=cluster.name, manifests=docs)
