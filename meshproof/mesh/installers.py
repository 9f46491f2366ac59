"""Control-plane install steps for each installer: istioctl, helm, sail (Sail operator / OSSM).

Each function returns the steps for one cluster; `meshproof.mesh.plan` orders them with the add-ons.
Readiness follows the facts: CR Ready conditions, istiod available, DaemonSets fully available
(istio-facts §1.2 "Helm readiness", §1.4 "Readiness waits").
"""

from __future__ import annotations

from meshproof.mesh import argv, olm, pins, values
from meshproof.mesh.model import ISTIO_OPERATOR_FILE, PlanStep, WaitSpec
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.mesh.templates import render_one

SAIL_API = "sailoperator.io/v1"


def rollout(kind: str, name: str, namespace: str) -> WaitSpec:
    return WaitSpec(
        api_version="apps/v1", kind=kind, name=name, namespace=namespace, rollout=True, budget="rollout"
    )


def data_plane_waits(spec: MeshSpec) -> list[WaitSpec]:
    """istiod available, and the node agents the mode needs fully available on every node."""
    waits = [rollout("Deployment", spec.istiod_deployment, spec.istio_namespace)]
    if spec.cni_namespace:
        waits.append(rollout("DaemonSet", "istio-cni-node", spec.cni_namespace))
    if spec.ztunnel_namespace:
        waits.append(rollout("DaemonSet", "ztunnel", spec.ztunnel_namespace))
    return waits


# --- istioctl -----------------------------------------------------------------------------------------


def istio_operator(spec: MeshSpec, cluster: ClusterSpec) -> dict[str, object]:
    return render_one(
        "mesh/istio-operator.yaml.j2",
        profile=values.istioctl_profile(spec),
        components=values.istioctl_components(spec),
        values=values.istioctl_values(spec, cluster),
    )


def istioctl_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    profile = values.istioctl_profile(spec)
    waits = data_plane_waits(spec)
    if not spec.ambient:
        # The default and openshift profiles include the ingress gateway (istio-facts §1.1).
        waits.append(rollout("Deployment", "istio-ingressgateway", spec.istio_namespace))
    return [
        PlanStep(
            title=f"Install Istio {spec.istio_version} with istioctl (profile {profile})",
            cluster=cluster.name,
            command=argv.istioctl(
                cluster, "install", "--filename", ISTIO_OPERATOR_FILE, "--skip-confirmation"
            ),
            istio_operator=istio_operator(spec, cluster),
            undo_command=argv.istioctl(cluster, "uninstall", "--purge", "--skip-confirmation"),
            wait=waits,
        )
    ]


# --- helm ---------------------------------------------------------------------------------------------


def helm_chart_step(
    cluster: ClusterSpec,
    *,
    title: str,
    release: str,
    chart: str,
    repo: str,
    version: str,
    namespace: str,
    chart_values: dict[str, object],
    wait: list[WaitSpec],
) -> PlanStep:
    """`helm upgrade --install` of one chart from its repository, undone by `helm uninstall`."""
    return PlanStep(
        title=title,
        cluster=cluster.name,
        command=argv.helm_install(
            cluster, release=release, chart=chart, repo=repo, version=version, namespace=namespace
        ),
        helm_chart=chart,
        helm_values=chart_values,
        undo_command=argv.helm_uninstall(cluster, release=release, namespace=namespace),
        wait=wait,
    )


def _istio_chart_step(
    spec: MeshSpec,
    cluster: ClusterSpec,
    *,
    title: str,
    release: str,
    chart: str,
    namespace: str,
    chart_values: dict[str, object],
    wait: list[WaitSpec],
) -> PlanStep:
    return helm_chart_step(
        cluster,
        title=title,
        release=release,
        chart=chart,
        repo=pins.ISTIO_HELM_REPO,
        version=spec.istio_version,
        namespace=namespace,
        chart_values=chart_values,
        wait=wait,
    )


def helm_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    """base, istiod, cni, ztunnel charts in the order istio.io documents (istio-facts §1.2)."""
    ns = spec.istio_namespace
    steps = [
        _istio_chart_step(
            spec,
            cluster,
            title="Install the Istio base chart (CRDs)",
            release="istio-base",
            chart="base",
            namespace=ns,
            chart_values=values.helm_base_values(spec, cluster),
            wait=[olm.crd_established("peerauthentications.security.istio.io")],
        ),
        _istio_chart_step(
            spec,
            cluster,
            title="Install the istiod chart",
            release="istiod",
            chart="istiod",
            namespace=ns,
            chart_values=values.helm_istiod_values(spec, cluster),
            wait=[rollout("Deployment", spec.istiod_deployment, ns)],
        ),
    ]
    if spec.cni_namespace:
        steps.append(
            _istio_chart_step(
                spec,
                cluster,
                title="Install the istio-cni chart",
                release="istio-cni",
                chart="cni",
                namespace=spec.cni_namespace,
                chart_values=values.helm_cni_values(spec, cluster),
                wait=[rollout("DaemonSet", "istio-cni-node", spec.cni_namespace)],
            )
        )
    if spec.ztunnel_namespace:
        steps.append(
            _istio_chart_step(
                spec,
                cluster,
                title="Install the ztunnel chart",
                release="ztunnel",
                chart="ztunnel",
                namespace=spec.ztunnel_namespace,
                chart_values=values.helm_ztunnel_values(spec, cluster),
                wait=[rollout("DaemonSet", "ztunnel", spec.ztunnel_namespace)],
            )
        )
    return steps


# --- sail ---------------------------------------------------------------------------------------------


def sail_operator_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    """The operator: through OLM on OpenShift (OSSM), through the upstream Sail chart elsewhere."""
    assert spec.sail is not None
    if spec.sail.source == "olm":
        return olm.ossm_operator_steps(spec, cluster)
    return [
        helm_chart_step(
            cluster,
            title=f"Install the Sail operator {spec.sail.version} (helm)",
            release="sail-operator",
            chart="sail-operator",
            repo=pins.SAIL_HELM_REPO,
            version=spec.sail.version,
            namespace=spec.sail.namespace,
            chart_values={},
            wait=[
                rollout("Deployment", spec.sail.deployment, spec.sail.namespace),
                *(olm.crd_established(name) for name in olm.SAIL_CRDS),
            ],
        )
    ]


def sail_istio(spec: MeshSpec, cluster: ClusterSpec) -> dict[str, object]:
    strategy: dict[str, object] = {"type": spec.revision_strategy}
    if spec.revision_strategy == "RevisionBased":
        strategy["inactiveRevisionDeletionGracePeriodSeconds"] = 30  # the CRD default, stated for the reader
    return render_one(
        "sail/istio.yaml.j2",
        version=spec.sail_version,
        namespace=spec.istio_namespace,
        profile="ambient" if spec.ambient else None,
        update_strategy=strategy,
        values=values.sail_istio_values(spec, cluster),
    )


def sail_cni(spec: MeshSpec, cluster: ClusterSpec) -> dict[str, object]:
    return render_one(
        "sail/istiocni.yaml.j2",
        version=spec.sail_version,
        namespace=spec.cni_namespace,
        # Without profile ambient the CNI node agent never enables ambient redirection.
        profile="ambient" if spec.ambient else None,
        values=values.sail_cni_values(spec, cluster),
    )


def sail_ztunnel(spec: MeshSpec, cluster: ClusterSpec) -> dict[str, object]:
    assert spec.sail is not None
    return render_one(
        "sail/ztunnel.yaml.j2",
        api_version=spec.sail.ztunnel_api_version,
        version=spec.sail_version,
        namespace=spec.ztunnel_namespace,
        # istio-facts §0 trap 1: v1alpha1 needs profile ambient, v1 has no profile field at all.
        profile="ambient" if spec.sail.ztunnel_needs_profile else None,
        values=values.sail_ztunnel_values(spec, cluster),
    )


def sail_cr_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    assert spec.sail is not None
    steps = [
        PlanStep(
            title="Create the Istio control plane (Istio default)",
            cluster=cluster.name,
            manifests=[sail_istio(spec, cluster)],
        ),
        PlanStep(
            title="Create the CNI node agent (IstioCNI default)",
            cluster=cluster.name,
            manifests=[sail_cni(spec, cluster)],
        ),
    ]
    waits = [
        WaitSpec(api_version=SAIL_API, kind="Istio", name="default", condition="Ready"),
        WaitSpec(api_version=SAIL_API, kind="IstioCNI", name="default", condition="Ready"),
    ]
    if spec.ambient:
        steps.append(
            PlanStep(
                title="Create ztunnel (ZTunnel default)",
                cluster=cluster.name,
                manifests=[sail_ztunnel(spec, cluster)],
            )
        )
        waits.append(
            WaitSpec(
                api_version=spec.sail.ztunnel_api_version, kind="ZTunnel", name="default", condition="Ready"
            )
        )
    if spec.revision_strategy == "RevisionBased":
        steps.append(
            PlanStep(
                title="Tag the active revision as default (IstioRevisionTag default)",
                cluster=cluster.name,
                manifests=[render_one("sail/revision-tag.yaml.j2", istio_name="default")],
            )
        )
        waits.append(
            WaitSpec(api_version=SAIL_API, kind="IstioRevisionTag", name="default", condition="Reconciled")
        )
    # One wait step after all CRs: Istio reports its dependencies (CNI, ztunnel) in its status, so waiting
    # on each CR before creating the next could stall on a dependency not created yet.
    steps.append(
        PlanStep(
            title="Wait for the control plane and data plane",
            cluster=cluster.name,
            wait=waits + data_plane_waits(spec),
        )
    )
    return steps


def installer_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    if spec.installer == "istioctl":
        return istioctl_steps(spec, cluster)
    if spec.installer == "helm":
        return helm_steps(spec, cluster)
    return sail_operator_steps(spec, cluster) + sail_cr_steps(spec, cluster)
