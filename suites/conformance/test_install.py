"""The installed mesh is healthy and is the mesh that was asked for.

The control plane is available and its custom resources Ready (Sail), the data plane matches the mode
(ztunnel and the CNI node agent for ambient, the injector for sidecar), versions are the requested ones,
each feature's wiring is present exactly when the feature was requested, and the operator is not stuck
reconciling. Negative controls: a namespace without the enrollment label gets neither a sidecar nor ambient
redirection; a sidecar-mode cluster runs no ztunnel; a feature not requested leaves no trace in istiod.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from meshproof.checks.verdict import Verdict, require
from meshproof.config import Feature
from meshproof.evidence import collect
from meshproof.mesh import health
from meshproof.mesh.info import MeshInfo
from meshproof.mesh.olm import ossm_csv_name
from meshproof.mesh.record import read_record
from meshproof.wait import Timeouts, eventually

if TYPE_CHECKING:
    from meshproof.kube import Cluster

pytestmark = pytest.mark.install

SAIL_API = "sailoperator.io/v1"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# A settled operator reconciles on changes only; Sail's own e2e fails on a steady stream (istio-facts §1.4).
RECONCILE_WINDOW_S = 60
MAX_RECONCILES_PER_MINUTE = 10


def _istiod(cluster: Cluster, mesh: MeshInfo) -> dict[str, Any] | None:
    return cluster.get("apps/v1", "Deployment", mesh.istiod_deployment, mesh.istio_namespace)


def _selector(workload: dict[str, Any]) -> str:
    labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def test_control_plane_is_available(clusters: dict[str, Cluster], mesh: MeshInfo, timeouts: Timeouts) -> None:
    for name, cluster in clusters.items():

        def available(c: Cluster = cluster) -> None:
            require(health.rolled_out(_istiod(c, mesh), f"istiod {mesh.istiod_deployment}"))

        eventually(available, timeout=timeouts.rollout, description=f"istiod available on {name}")


def test_sail_resources_are_ready(clusters: dict[str, Cluster], mesh: MeshInfo, timeouts: Timeouts) -> None:
    if mesh.spec.sail is None:
        pytest.skip(f"unsupported: installer {mesh.spec.installer} creates no Sail resources")
    ztunnel_api = mesh.spec.sail.ztunnel_api_version
    for name, cluster in clusters.items():

        def ready(c: Cluster = cluster) -> None:
            istio = c.get(SAIL_API, "Istio", "default")
            checks = [
                health.condition_true(istio, "Ready", "Istio default"),
                Verdict(
                    (istio or {}).get("status", {}).get("state") == "Healthy",
                    f"Istio default state {(istio or {}).get('status', {}).get('state')!r}, want 'Healthy'",
                ),
                health.condition_true(c.get(SAIL_API, "IstioCNI", "default"), "Ready", "IstioCNI default"),
            ]
            if mesh.spec.ambient:
                # Fetched through the apiVersion the plan used: proves the operator serves it (trap 1).
                checks.append(
                    health.condition_true(
                        c.get(ztunnel_api, "ZTunnel", "default"), "Ready", "ZTunnel default"
                    )
                )
            if mesh.spec.revision_strategy == "RevisionBased":
                tag = c.get(SAIL_API, "IstioRevisionTag", "default") or {}
                target = tag.get("status", {}).get("istioRevision")
                checks.append(
                    Verdict(
                        target == mesh.revision,
                        f"IstioRevisionTag default points at {target!r}, want {mesh.revision!r}",
                    )
                )
            require(health.all_of(checks))

        eventually(ready, timeout=timeouts.install, description=f"Sail resources Ready on {name}")


def test_data_plane_components_match_the_mode(
    clusters: dict[str, Cluster], mesh: MeshInfo, timeouts: Timeouts
) -> None:
    for name, cluster in clusters.items():
        istiod = _istiod(cluster, mesh)
        if mesh.spec.ambient:
            assert mesh.ztunnel_namespace and mesh.cni_namespace

            def agents_ready(c: Cluster = cluster) -> None:
                ztunnel = c.get("apps/v1", "DaemonSet", "ztunnel", mesh.ztunnel_namespace)
                cni = c.get("apps/v1", "DaemonSet", "istio-cni-node", mesh.cni_namespace)
                require(
                    health.all_of(
                        [health.rolled_out(ztunnel, "ztunnel"), health.rolled_out(cni, "istio-cni-node")]
                    )
                )

            eventually(agents_ready, timeout=timeouts.rollout, description=f"ztunnel and istio-cni on {name}")
            # istiod must trust exactly the ztunnel that runs (istio-facts §0 trap 11, §1.4).
            require(health.env_is(istiod, "discovery", "PILOT_ENABLE_AMBIENT", "true"))
            require(
                health.env_is(
                    istiod, "discovery", "CA_TRUSTED_NODE_ACCOUNTS", f"{mesh.ztunnel_namespace}/ztunnel"
                )
            )
        else:
            injectors = cluster.list(
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                label_selector="app=sidecar-injector",
            )
            assert injectors, f"no sidecar injector webhook on {name}"
            # Negative control: sidecar mode runs no ztunnel anywhere.
            ztunnels = collect.ztunnels_in_cluster(cluster)
            assert not ztunnels, f"sidecar-mode cluster {name} runs ztunnel: {ztunnels}"
            if mesh.cni_namespace:
                cni = cluster.get("apps/v1", "DaemonSet", "istio-cni-node", mesh.cni_namespace)
                require(health.rolled_out(cni, "istio-cni-node"))


def _pause_pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace, "labels": {"app": "probe"}},
        "spec": {"containers": [{"name": "pause", "image": PAUSE_IMAGE}], "terminationGracePeriodSeconds": 0},
    }


def test_enrolled_namespace_gets_the_data_plane_and_unlabelled_does_not(
    cluster: Cluster, mesh: MeshInfo, test_id: str, timeouts: Timeouts
) -> None:
    enrolled, bare = f"{test_id}-in"[:63], f"{test_id}-out"[:63]
    namespaces = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": enrolled, "labels": mesh.enrollment_labels()},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bare}},
    ]
    try:
        cluster.apply(namespaces, test_id=test_id)
        cluster.apply([_pause_pod(enrolled), _pause_pod(bare)], test_id=test_id)
        positive = health.ambient_redirected if mesh.spec.ambient else health.sidecar_injected

        def observed() -> None:
            inside = cluster.get("v1", "Pod", "probe", enrolled)
            outside = cluster.get("v1", "Pod", "probe", bare)
            assert inside is not None and outside is not None, "probe pods not created yet"
            require(health.all_of([positive(inside), health.not_enrolled(outside)]))

        eventually(
            observed, timeout=timeouts.pod_ready, converge=2, description="enrollment by namespace label"
        )
    finally:
        for ns in (enrolled, bare):
            cluster.delete("v1", "Namespace", ns)


def test_versions_are_as_requested(clusters: dict[str, Cluster], mesh: MeshInfo) -> None:
    requested = mesh.spec.istio_version
    major, minor, patch = (int(p) for p in requested.split("."))
    sibling = f"{major}.{minor}.{patch + 1}"
    for name, cluster in clusters.items():
        istiod = _istiod(cluster, mesh)
        assert istiod is not None, f"no istiod on {name}"
        pods = cluster.pods(mesh.istio_namespace, _selector(istiod))
        assert pods, f"no istiod pod on {name}"
        result = cluster.exec(
            pods[0]["metadata"]["name"],
            mesh.istio_namespace,
            ["pilot-discovery", "version", "-s"],
            container="discovery",
        )
        require(health.version_matches(result.stdout, requested))
        # The comparison discriminates on this very output: the next patch must not match.
        assert not health.version_matches(result.stdout, sibling).ok, f"version check accepts {sibling} too"
        if mesh.spec.sail is not None:
            istio = cluster.get(SAIL_API, "Istio", "default") or {}
            assert istio.get("spec", {}).get("version") == mesh.spec.sail_version
            assert istio.get("status", {}).get("activeRevisionName") == mesh.revision
        if mesh.spec.ossm_version is not None:
            csv_name = ossm_csv_name(mesh.spec)
            csv = cluster.get(
                "operators.coreos.com/v1alpha1", "ClusterServiceVersion", csv_name, "openshift-operators"
            )
            phase = (csv or {}).get("status", {}).get("phase")
            require(Verdict(phase == "Succeeded", f"CSV {csv_name} phase {phase!r}, want 'Succeeded'"))


FEATURES = [pytest.param(f, id=f.value) for f in Feature]


@pytest.mark.parametrize("feature", FEATURES)
def test_feature_wiring_is_present_exactly_when_requested(
    feature: Feature, cluster: Cluster, mesh: MeshInfo
) -> None:
    """Requested: the setting is there. Not requested: it is not (the negative control for the other runs).

    A precondition, not the proof: these read back settings meshproof wrote. Native nftables is proven in
    the pods' network namespaces and by traffic (test_nftables.py), istio-csr on the certificates workloads
    hold (test_istio_csr.py); a run whose setting is present but whose capture or CA is not the feature's
    fails there.
    """
    wanted = mesh.has(feature)
    istiod = _istiod(cluster, mesh)
    if feature is Feature.GIE:
        require(
            health.env_is(
                istiod, "discovery", "ENABLE_GATEWAY_API_INFERENCE_EXTENSION", "true" if wanted else None
            )
        )
    elif feature is Feature.ISTIO_CSR:
        env = health.container_env(istiod or {}, "discovery")
        assert (env.get("ENABLE_CA_SERVER") == "false") == wanted, (
            f"istiod ENABLE_CA_SERVER={env.get('ENABLE_CA_SERVER')!r}"
        )
    elif feature is Feature.NFTABLES:
        if mesh.cni_namespace is None:
            assert not wanted, "nftables was requested but the install has no CNI"
            return
        config = cluster.get("v1", "ConfigMap", "istio-cni-config", mesh.cni_namespace) or {}
        native = str((config.get("data") or {}).get("NATIVE_NFTABLES", "false")).lower()
        assert (native == "true") == wanted, (
            f"istio-cni-config NATIVE_NFTABLES={native!r}, nftables requested: {wanted}"
        )
    elif feature is Feature.MULTICLUSTER:
        ns = cluster.get("v1", "Namespace", mesh.istio_namespace) or {}
        network = (ns.get("metadata", {}).get("labels") or {}).get("topology.istio.io/network")
        expected = mesh.spec.primary.network
        assert network == expected, f"{mesh.istio_namespace} network label {network!r}, want {expected!r}"


def test_install_record_matches_this_run(clusters: dict[str, Cluster], mesh: MeshInfo) -> None:
    other_mode = mesh.spec.model_copy(update={"mode": "sidecar" if mesh.spec.ambient else "ambient"})
    for name, cluster in clusters.items():
        record = read_record(cluster)
        assert record is not None, f"no install record on {name}"
        assert record.matches(mesh.spec), (
            f"{name} records {record.summary}, this run is {mesh.spec.summary()}"
        )
        # Negative control: the record would tell a differently configured run apart.
        assert not record.matches(other_mode)


def test_operator_is_not_in_a_reconcile_loop(clusters: dict[str, Cluster], mesh: MeshInfo) -> None:
    operator = mesh.spec.sail
    if operator is None:
        pytest.skip(f"unsupported: installer {mesh.spec.installer} runs no operator")
    for name, cluster in clusters.items():
        deployment = cluster.get("apps/v1", "Deployment", operator.deployment, operator.namespace)
        assert deployment is not None, (
            f"no operator Deployment {operator.namespace}/{operator.deployment} on {name}"
        )
        for pod in cluster.pods(operator.namespace, _selector(deployment)):
            text = cluster.logs(pod["metadata"]["name"], operator.namespace, since_seconds=RECONCILE_WINDOW_S)
            require(
                health.reconcile_rate(
                    text, window_s=RECONCILE_WINDOW_S, max_per_minute=MAX_RECONCILES_PER_MINUTE
                )
            )
