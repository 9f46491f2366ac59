"""Feature add-ons rendered from the same MeshSpec: istio-csr, the inference extension, multicluster.

nftables has no steps of its own: it is two values (`global.nativeNftables` on the control plane and on
the CNI) placed by `meshproof.mesh.values`. Add-ons split into what must exist before the control plane
(`before_control_plane`) and what needs it running (`after_control_plane`, `across_clusters`).
"""

from __future__ import annotations

from itertools import permutations

from meshproof.config import Feature
from meshproof.mesh import argv, olm, pins
from meshproof.mesh.installers import helm_chart_step, rollout
from meshproof.mesh.model import PlanStep, WaitSpec
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.mesh.templates import render, render_one

CERT_MANAGER_API = "cert-manager.io/v1"


def before_control_plane(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    steps: list[PlanStep] = []
    if spec.has(Feature.GIE):
        steps.extend(gie_steps(spec, cluster))
    if spec.has(Feature.ISTIO_CSR):
        steps.extend(istio_csr_steps(spec, cluster))
    if spec.multicluster:
        steps.extend(multicluster_ca_steps(spec, cluster))
    return steps


def after_control_plane(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    steps = east_west_gateway_steps(spec, cluster) if spec.multicluster else []
    if spec.has(Feature.GIE) and cluster == spec.primary:
        steps.extend(gie_setup_steps(spec, cluster))
    return steps


def across_clusters(spec: MeshSpec) -> list[PlanStep]:
    return remote_secret_steps(spec) if spec.multicluster else []


# --- Gateway API Inference Extension (istio-facts §7) -------------------------------------------------


def gie_build(spec: MeshSpec) -> pins.GieBuild:
    # Red Hat's 1.27 build watches GIE v1 (inference.networking.k8s.io); upstream 1.27 watches v1alpha2
    # (inference.networking.x-k8s.io) (istio-facts §0 trap 2).
    return pins.GIE_OSSM if spec.build == "ossm" else pins.GIE_UPSTREAM


def gie_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    build = gie_build(spec)
    return [
        PlanStep(
            title=f"Install the inference-extension CRDs {build.crd_ref} ({build.api_version})",
            cluster=cluster.name,
            command=argv.kubectl(cluster, "apply", "--server-side", "--kustomize", build.crds_kustomization),
            undo_command=argv.kubectl(
                cluster, "delete", "--kustomize", build.crds_kustomization, "--ignore-not-found"
            ),
            # GIE v1.0's CRD set also carries the x-k8s pool, which the gie suite's control uses.
            wait=[
                olm.crd_established(f"inferencepools.{b.group}")
                for b in ((build, pins.GIE_UPSTREAM) if build is pins.GIE_OSSM else (build,))
            ],
        ),
        *gie_control_crd_steps(spec, cluster),
    ]


def gie_control_crd_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    """The other API group's InferencePool CRD, for the control that a pool of that group is not resolved.

    GIE v1.0's CRD set already carries both groups; v0.5's has only x-k8s, so upstream runs add the v1 CRD.
    """
    if gie_build(spec) is pins.GIE_OSSM:
        return []
    other = pins.GIE_OSSM
    url = other.crd_url("inferencepools")
    return [
        PlanStep(
            title=f"Install the {other.api_version} InferencePool CRD (control: a pool Istio does not watch)",
            cluster=cluster.name,
            command=argv.kubectl(cluster, "apply", "--server-side", "--filename", url),
            undo_command=argv.kubectl(cluster, "delete", "--filename", url, "--ignore-not-found"),
            wait=[olm.crd_established(f"inferencepools.{other.group}")],
        )
    ]


def gie_setup_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    """The gie suite's set-up (meshproof.gie): Gateway, route, pool, EPP and model servers, with the
    control backends; applied once per run like the mesh, removed with it."""
    from meshproof import gie  # here: meshproof.gie renders from the spec this module is imported by

    setup = gie.GieSetup.for_spec(spec)
    ns = setup.namespace
    return [
        PlanStep(
            title=f"Deploy the inference set-up in {ns}: {setup.describe()}",
            cluster=cluster.name,
            manifests=setup.objects(),
            wait=[
                *(rollout("Deployment", server.name, ns) for server in gie.MODEL_SERVERS),
                rollout("Deployment", gie.EPP, ns),
                WaitSpec(
                    api_version="gateway.networking.k8s.io/v1",
                    kind="Gateway",
                    name=gie.GATEWAY,
                    namespace=ns,
                    condition="Programmed",
                ),
            ],
        )
    ]


# --- cert-manager istio-csr (istio-facts §6) ----------------------------------------------------------


def istio_csr_revisions(spec: MeshSpec) -> list[str]:
    # istiod's serving certificate must name every revision's Service (and the `default` tag's).
    return sorted({"default", spec.revision})


def istio_csr_helm_values(spec: MeshSpec) -> dict[str, object]:
    server: dict[str, object] = {}
    if spec.ambient:
        # ztunnel asks for certificates on behalf of the pods on its node; istio-csr must trust it for that
        # (istio-facts §6.2 caTrustedNodeAccounts, "required for ambient").
        server["caTrustedNodeAccounts"] = f"{spec.ztunnel_namespace}/ztunnel"
    app: dict[str, object] = {
        "certmanager": {
            "namespace": spec.istio_namespace,
            "issuer": {"enabled": True, "name": "istio-ca", "kind": "Issuer", "group": "cert-manager.io"},
            # The istio-csr suite proves issuance by the CertificateRequests istio-csr creates; by default it
            # deletes each once signed (istio-facts §0 trap 10). A test cluster's request count stays small.
            "preserveCertificateRequests": True,
        },
        "tls": {"trustDomain": spec.trust_domain},
        "istio": {"namespace": spec.istio_namespace, "revisions": istio_csr_revisions(spec)},
    }
    if server:
        app["server"] = server
    return {"app": app}


def ca_issuer_step(spec: MeshSpec, cluster: ClusterSpec) -> PlanStep:
    return PlanStep(
        title="Create the mesh CA in cert-manager (self-signed root, CA Issuer istio-ca)",
        cluster=cluster.name,
        manifests=render(
            "istio-csr/ca-issuer.yaml.j2", namespace=spec.istio_namespace, trust_domain=spec.trust_domain
        ),
        wait=[
            WaitSpec(
                api_version=CERT_MANAGER_API,
                kind="Certificate",
                name="istio-ca",
                namespace=spec.istio_namespace,
                condition="Ready",
            )
        ],
    )


def istio_csr_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    if spec.platform == "openshift":
        return [
            *olm.cert_manager_operator_steps(cluster),
            ca_issuer_step(spec, cluster),
            PlanStep(
                title="Create istio-csr (IstioCSR default)",
                cluster=cluster.name,
                manifests=[
                    render_one("mesh/namespace.yaml.j2", name=pins.OCP_ISTIO_CSR_NAMESPACE, labels={}),
                    render_one(
                        "istio-csr/istiocsr.yaml.j2",
                        namespace=pins.OCP_ISTIO_CSR_NAMESPACE,
                        trust_domain=spec.trust_domain,
                        istio_namespace=spec.istio_namespace,
                        revisions=istio_csr_revisions(spec),
                    ),
                ],
                wait=[
                    WaitSpec(
                        api_version="operator.openshift.io/v1alpha1",
                        kind="IstioCSR",
                        name="default",
                        namespace=pins.OCP_ISTIO_CSR_NAMESPACE,
                        condition="Ready",
                    )
                ],
            ),
        ]
    cm_ns = pins.CERT_MANAGER_NAMESPACE
    return [
        helm_chart_step(
            cluster,
            title=f"Install cert-manager {pins.CERT_MANAGER_CHART_VERSION}",
            release="cert-manager",
            chart="cert-manager",
            repo=pins.JETSTACK_HELM_REPO,
            version=pins.CERT_MANAGER_CHART_VERSION,
            namespace=cm_ns,
            chart_values={"crds": {"enabled": True}},
            wait=[
                rollout("Deployment", "cert-manager", cm_ns),
                rollout("Deployment", "cert-manager-webhook", cm_ns),
                rollout("Deployment", "cert-manager-cainjector", cm_ns),
            ],
        ),
        ca_issuer_step(spec, cluster),
        helm_chart_step(
            cluster,
            title=f"Install istio-csr {pins.ISTIO_CSR_CHART_VERSION}",
            release="cert-manager-istio-csr",
            chart="cert-manager-istio-csr",
            repo=pins.JETSTACK_HELM_REPO,
            version=pins.ISTIO_CSR_CHART_VERSION,
            namespace=cm_ns,
            chart_values=istio_csr_helm_values(spec),
            wait=[rollout("Deployment", "cert-manager-istio-csr", cm_ns)],
        ),
    ]


# --- multicluster (istio-facts §8) --------------------------------------------------------------------


def multicluster_ca_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    manifests = render("multicluster/cacerts.yaml.j2", namespace=spec.istio_namespace, cluster=cluster.name)
    if spec.platform == "openshift":
        # OSSM creates remote secrets with --create-service-account=false for this account (§8.2).
        manifests += render("multicluster/reader-account.yaml.j2", namespace=spec.istio_namespace)
    return [
        PlanStep(
            title="Plug in this cluster's intermediate CA from the shared root (cacerts)",
            cluster=cluster.name,
            manifests=manifests,
        )
    ]


def east_west_gateway_steps(spec: MeshSpec, cluster: ClusterSpec) -> list[PlanStep]:
    assert cluster.network is not None
    ns = spec.istio_namespace
    if spec.ambient:
        return [
            PlanStep(
                title=f"Create the ambient east-west gateway for {cluster.network}",
                cluster=cluster.name,
                manifests=render(
                    "multicluster/eastwest-ambient.yaml.j2", namespace=ns, network=cluster.network
                ),
                wait=[
                    WaitSpec(
                        api_version="gateway.networking.k8s.io/v1",
                        kind="Gateway",
                        name="istio-eastwestgateway",
                        namespace=ns,
                        condition="Programmed",
                    )
                ],
            )
        ]
    return [
        PlanStep(
            title=f"Create the east-west gateway for {cluster.network} and expose services on 15443",
            cluster=cluster.name,
            manifests=render("multicluster/eastwest-sidecar.yaml.j2", namespace=ns, network=cluster.network)
            + render("multicluster/expose-services.yaml.j2", namespace=ns),
            wait=[
                rollout("Deployment", "istio-eastwestgateway", ns),
                WaitSpec(
                    api_version="v1",
                    kind="Service",
                    name="istio-eastwestgateway",
                    namespace=ns,
                    field="status.loadBalancer.ingress",
                ),
            ],
        )
    ]


def remote_secret_steps(spec: MeshSpec) -> list[PlanStep]:
    """Each istiod gets a remote secret for every other cluster (istio-facts §8.1 "Endpoint discovery")."""
    steps: list[PlanStep] = []
    for source, target in permutations(spec.clusters, 2):
        create = ["create-remote-secret", f"--name={source.name}"]
        if source.kind is not None:
            # The kubeconfig points kind at 127.0.0.1; istiod in the other cluster reaches the API server
            # by its container name on the shared docker network.
            create.append(f"--server=https://{source.name}-control-plane:6443")
        if spec.platform == "openshift":
            create.append("--create-service-account=false")
        steps.append(
            PlanStep(
                title=f"Give {target.name} a remote secret for {source.name}",
                cluster=target.name,
                command=argv.shell(
                    argv.istioctl(source, *create),
                    argv.kubectl(target, "apply", "--server-side", "--filename", "-"),
                    pipe=True,
                ),
                undo_command=argv.kubectl(
                    target,
                    "delete",
                    "secret",
                    f"istio-remote-secret-{source.name}",
                    "--namespace",
                    spec.istio_namespace,
                    "--ignore-not-found",
                ),
            )
        )
    return steps
