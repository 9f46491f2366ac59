"""An existing control plane is found by the mesh's own marks, however it was installed (issue 14 item 6).

The objects below have the names and labels Istio 1.27's istio-discovery chart gives them (templates
`validatingwebhookconfiguration.yaml`: `istio-validator-<rev>-<ns>` with webhook `rev.validation.istio.io`,
labels app=istiod and istio.io/rev; `mutatingwebhook.yaml`: `istio-sidecar-injector-<rev>` with webhooks
`rev.namespace.sidecar-injector.istio.io` / `rev.object.sidecar-injector.istio.io`; the Deployment
`istiod-<rev>` labelled app=istiod) and the Sail sample `Istio` (sail-operator 1.27.3
chart/samples/istio-sample-revisionbased.yaml). A fake reader serves them; what it cannot prove is that a
real apiserver lists these kinds with the client's selectors (the kube engine's own tests cover `list`).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fixtures_data.shared_data import upstream

from meshproof.kube_connect import ClusterError, KubeApiError
from meshproof.kube_objects import RUN_ID_LABEL
from meshproof.mesh.detect import find_mesh_marks, marks_in

NS = "istio-system"


def validator(rev: str) -> dict[str, Any]:
    return {
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"istio-validator-{rev}-{NS}", "labels": {"app": "istiod", "istio.io/rev": rev}},
        "webhooks": [
            {"name": "rev.validation.istio.io", "clientConfig": {"service": {"name": f"istiod-{rev}"}}}
        ],
    }


def injector(rev: str) -> dict[str, Any]:
    return {
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"istio-sidecar-injector-{rev}", "labels": {"app": "sidecar-injector"}},
        "webhooks": [
            {"name": "rev.namespace.sidecar-injector.istio.io"},
            {"name": "rev.object.sidecar-injector.istio.io"},
        ],
    }


CERT_MANAGER_WEBHOOK = {
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "cert-manager-webhook"},
    "webhooks": [{"name": "webhook.cert-manager.io"}],
}
KUBE_ROOT_CA = {"metadata": {"name": "kube-root-ca.crt", "namespace": NS}, "data": {"ca.crt": "..."}}
ROOT_CERT = {"metadata": {"name": "istio-ca-root-cert", "namespace": NS}, "data": {"root-cert.pem": "..."}}
MESH_CONFIG_CANARY = {
    "metadata": {"name": "istio-canary", "namespace": NS},
    "data": {"mesh": "trustDomain: x"},
}


def istiod_pod(rev: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"istiod-{rev}-7c9f-x2k",
            "namespace": NS,
            "labels": {"app": "istiod", "istio.io/rev": rev},
        },
    }


class FakeReader:
    """Serves lists by kind (and namespace/selector as the real calls pass them); Sail may be absent."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], sail: bool = True, namespace: Any = None):
        self.objects, self.sail, self.namespace = objects, sail, namespace
        self.calls: list[tuple[str, str | None, str | None]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        assert (kind, name) == ("Namespace", NS)
        return self.namespace

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append((kind, namespace, label_selector))
        if kind == "Istio" and not self.sail:
            raise ClusterError("cluster c1 does not serve Istio (sailoperator.io/v1); is its CRD installed?")
        return [dict(o) for o in self.objects.get(kind, [])]


def test_a_revisioned_istiod_is_found_by_its_webhooks_pods_and_configmaps():
    reader = FakeReader(
        {
            "ConfigMap": [KUBE_ROOT_CA, ROOT_CERT, MESH_CONFIG_CANARY],
            "ValidatingWebhookConfiguration": [validator("canary"), CERT_MANAGER_WEBHOOK],
            "MutatingWebhookConfiguration": [injector("canary")],
            "Pod": [istiod_pod("canary")],
            "Deployment": [
                {"metadata": {"name": "istiod-canary", "namespace": NS, "labels": {"app": "istiod"}}}
            ],
        },
        sail=False,
    )
    marks = find_mesh_marks(reader, NS)
    assert marks.found == (
        "ConfigMap istio-system/istio-ca-root-cert",
        "ConfigMap istio-system/istio-canary",
        "ValidatingWebhookConfiguration istio-validator-canary-istio-system",
        "MutatingWebhookConfiguration istio-sidecar-injector-canary",
        "Deployment istio-system/istiod-canary (app=istiod)",
        "pod istio-system/istiod-canary-7c9f-x2k (app=istiod, istio.io/rev=canary)",
    )
    assert not marks.started_by_meshproof
    # pods and Deployments are looked for in every namespace, by istiod's label, not by a name
    assert ("Pod", None, "app=istiod") in reader.calls and ("Deployment", None, "app=istiod") in reader.calls


def test_an_ossm_mesh_is_found_by_its_sail_istio_resource():
    sample = upstream("sail-operator-1.27.3", "chart", "samples", "istio-sample-revisionbased.yaml")
    istio = next(d for d in yaml.safe_load_all(sample.read_text()) if d["kind"] == "Istio")
    marks = find_mesh_marks(FakeReader({"Istio": [istio]}), NS)
    assert marks.found == ("Sail Istio default (v1.27.3)",)


def test_an_istiod_running_outside_the_cluster_is_found_by_what_it_publishes():
    # no Deployment, no pod: only its ConfigMaps and webhooks are in the cluster
    marks = marks_in(configmaps=[ROOT_CERT], webhook_configurations=[validator("default")])
    assert marks and "ConfigMap istio-system/istio-ca-root-cert" in marks.summary()


def test_a_cluster_without_istio_has_no_marks():
    """The negative control: other webhooks and ConfigMaps (cert-manager, kube-root-ca.crt, a ConfigMap
    named `istio` without mesh config) are not a mesh."""
    unrelated_istio_named = {
        "metadata": {"name": "istio", "namespace": NS},
        "data": {"note": "not mesh config"},
    }
    reader = FakeReader(
        {
            "ConfigMap": [KUBE_ROOT_CA, unrelated_istio_named],
            "ValidatingWebhookConfiguration": [CERT_MANAGER_WEBHOOK],
        },
        sail=False,
    )
    marks = find_mesh_marks(reader, NS)
    assert not marks and marks.found == () and marks.summary() == "nothing"


def test_marks_in_a_namespace_meshproof_created_are_an_unfinished_meshproof_install():
    namespace = {"metadata": {"name": NS, "labels": {RUN_ID_LABEL: "20261202-101010-ab12"}}}
    ours = find_mesh_marks(FakeReader({"ConfigMap": [ROOT_CERT]}, namespace=namespace), NS)
    assert ours and ours.started_by_meshproof
    theirs = find_mesh_marks(FakeReader({"ConfigMap": [ROOT_CERT]}, namespace={"metadata": {"name": NS}}), NS)
    assert theirs and not theirs.started_by_meshproof


def test_not_being_able_to_look_is_not_finding_nothing():
    class Forbidden(FakeReader):
        def list(self, api_version: str, kind: str, **kw: Any) -> list[dict[str, Any]]:
            raise KubeApiError(f"list {kind} in all namespaces on cluster c1 failed: 403 Forbidden", 403)

    with pytest.raises(KubeApiError, match="403"):
        find_mesh_marks(Forbidden({}), NS)


def test_the_summary_is_short():
    marks = marks_in(istiod_pods=[istiod_pod(f"r{i}") for i in range(6)])
    assert marks.summary().endswith(", 2 more") and marks.summary().count("pod ") == 4


def test_the_marks_are_read_through_the_real_kubernetes_client(tmp_path):
    """The same reads through `meshproof.kube.Cluster` against the fake apiserver: selectors and
    cluster-scoped kinds as the client sends them. The fake serves no sailoperator.io API, as a cluster
    without Sail: that kind is skipped, not an error. It cannot prove a real apiserver's RBAC answers."""
    from fixtures_data.kube_apiserver import FakeApiServer

    from meshproof.kube import Cluster

    with FakeApiServer() as api:
        api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        api.put({"apiVersion": "v1", **istiod_pod("canary")})
        api.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}})
        api.put({"apiVersion": "admissionregistration.k8s.io/v1", **validator("canary")})
        api.put({"apiVersion": "admissionregistration.k8s.io/v1", **CERT_MANAGER_WEBHOOK})
        api.put({"apiVersion": "v1", "kind": "ConfigMap", **KUBE_ROOT_CA})
        cluster = Cluster("ctx", api.write_kubeconfig(tmp_path / "kc", context="ctx"), "run-1", "c1")
        try:
            marks = find_mesh_marks(cluster, NS)
        finally:
            cluster.close()
    assert marks.found == (
        "ValidatingWebhookConfiguration istio-validator-canary-istio-system",
        "pod istio-system/istiod-canary-7c9f-x2k (app=istiod, istio.io/rev=canary)",
    )
