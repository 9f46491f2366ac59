"""OLM steps: subscribe to an operator, pin its version, wait for its CSV (OpenShift only).

OSSM is pinned to the requested patch with `installPlanApproval: Manual` + `startingCSV` and one approval
of the first InstallPlan (istio-facts §1.3); Automatic approval would move straight on to the channel head.
"""

from __future__ import annotations

import shlex
from typing import Any

from meshproof.mesh import argv, pins
from meshproof.mesh.model import PlanStep, WaitSpec
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.mesh.templates import render_one

SUBSCRIPTION_API = "operators.coreos.com/v1alpha1"
CRD_API = "apiextensions.k8s.io/v1"
SAIL_CRDS = (
    "istios.sailoperator.io",
    "istiocnis.sailoperator.io",
    "ztunnels.sailoperator.io",
    "istiorevisiontags.sailoperator.io",
)


def subscription(
    *,
    package: str,
    namespace: str,
    channel: str,
    approval: str,
    starting_csv: str | None = None,
    env: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return render_one(
        "olm/subscription.yaml.j2",
        package=package,
        namespace=namespace,
        channel=channel,
        approval=approval,
        source=pins.REDHAT_CATALOG,
        source_namespace=pins.REDHAT_CATALOG_NAMESPACE,
        starting_csv=starting_csv,
        env=env,
    )


def crd_established(name: str) -> WaitSpec:
    return WaitSpec(
        api_version=CRD_API,
        kind="CustomResourceDefinition",
        name=name,
        condition="Established",
        budget="crd_established",
    )


def ossm_csv_name(spec: MeshSpec) -> str:
    assert spec.ossm_version is not None
    return f"{pins.OSSM_PACKAGE}.v{spec.ossm_version}"


def ossm_operator_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    """Subscribe to servicemeshoperator3 pinned to the requested patch, approve it, wait for the CSV."""
    ns = pins.OSSM_OPERATOR_NAMESPACE
    csv = ossm_csv_name(spec)
    sub = subscription(
        package=pins.OSSM_PACKAGE,
        namespace=ns,
        channel=pins.OSSM_CHANNEL,
        approval="Manual",
        starting_csv=csv,
    )
    return [
        PlanStep(
            title=f"Subscribe to the OSSM operator {spec.ossm_version}",
            cluster=cluster.name,
            manifests=[sub],
            wait=[
                WaitSpec(
                    api_version=SUBSCRIPTION_API,
                    kind="Subscription",
                    name=pins.OSSM_PACKAGE,
                    namespace=ns,
                    field="status.installPlanRef.name",
                )
            ],
        ),
        PlanStep(
            title=f"Approve the InstallPlan for {csv}",
            cluster=cluster.name,
            command=approve_install_plan(cluster, namespace=ns, subscription_name=pins.OSSM_PACKAGE),
            # Deleting the Subscription (manifest undo) leaves the CSV behind; OLM needs both gone.
            undo_command=argv.kubectl(
                cluster, "delete", "clusterserviceversion", csv, "--namespace", ns, "--ignore-not-found"
            ),
            wait=[
                WaitSpec(
                    api_version=SUBSCRIPTION_API,
                    kind="ClusterServiceVersion",
                    name=csv,
                    namespace=ns,
                    field="status.phase",
                    equals="Succeeded",
                ),
                WaitSpec(
                    api_version="apps/v1",
                    kind="Deployment",
                    name=pins.OSSM_OPERATOR_DEPLOYMENT,
                    namespace=ns,
                    rollout=True,
                    budget="rollout",
                ),
                *(crd_established(name) for name in SAIL_CRDS),
            ],
        ),
    ]


def approve_install_plan(cluster: ClusterSpec, *, namespace: str, subscription_name: str) -> list[str]:
    """Approve the InstallPlan the Subscription points at (its name is only known on the cluster)."""
    get = argv.kubectl(
        cluster,
        "get",
        "subscription",
        subscription_name,
        "--namespace",
        namespace,
        "--output",
        "jsonpath={.status.installPlanRef.name}",
    )
    patch = argv.kubectl(
        cluster,
        "patch",
        "installplan",
        "--namespace",
        namespace,
        "--type",
        "merge",
        "--patch",
        '{"spec":{"approved":true}}',
    )
    return ["sh", "-c", f'set -eu; plan="$({shlex.join(get)})"; {shlex.join(patch)} "$plan"']


def cert_manager_operator_steps(cluster: ClusterSpec) -> list[PlanStep]:
    """cert-manager Operator for Red Hat OpenShift with the IstioCSR add-on (istio-facts §6.1 steps 1-2)."""
    ns = pins.OCP_CERT_MANAGER_OPERATOR_NAMESPACE
    manifests = [
        render_one("mesh/namespace.yaml.j2", name=ns, labels={}),
        render_one("olm/operator-group.yaml.j2", name=ns, namespace=ns),
        subscription(
            package=pins.OCP_CERT_MANAGER_PACKAGE,
            namespace=ns,
            channel=pins.OCP_CERT_MANAGER_CHANNEL,
            approval="Automatic",
            # Needed where IstioCSR is still gated; harmless where it is GA (istio-facts §6.1 step 2).
            env=[{"name": "UNSUPPORTED_ADDON_FEATURES", "value": "IstioCSR=true"}],
        ),
    ]
    return [
        PlanStep(
            title="Install the cert-manager Operator for Red Hat OpenShift",
            cluster=cluster.name,
            manifests=manifests,
            wait=[
                WaitSpec(
                    api_version=SUBSCRIPTION_API,
                    kind="Subscription",
                    name=pins.OCP_CERT_MANAGER_PACKAGE,
                    namespace=ns,
                    field="status.installedCSV",
                ),
                WaitSpec(
                    api_version="apps/v1",
                    kind="Deployment",
                    name="cert-manager-webhook",
                    namespace=pins.CERT_MANAGER_NAMESPACE,
                    rollout=True,
                ),
            ],
        )
    ]
