"""Cluster over the real `kubernetes` client, talking HTTP to an in-process fake API server.

Proves what meshproof sends and how it reads answers: server-side apply as PATCH with
application/apply-patch+yaml, fieldManager=meshproof and force=true on discovery-derived paths (namespaced
vs cluster-scoped, CRD kinds); labels on every object; label-selector lists and sweeps; delete order;
wait timeout messages; logs; kubeconfig/context errors as one line without credentials.

What it cannot prove (fake API server, see tests/fixtures_data/kube_apiserver.py) is proven on a real
kube-apiserver in tests/control_plane/test_cp_kube_cluster.py: server-side apply ownership and conflicts,
defaulting, validation errors, RBAC and rejected credentials, unserved kinds, waits on status real
controllers write, rollout timeouts with their pods, logs, exec, port-forward and finalizers. Kept here:
what a real apiserver does not show or cannot be made to do on cue: the exact requests sent, a kind that
is forbidden mid-sweep, ordering over hand-made timestamps, and hand-made status for message formats.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_data.kube_apiserver import FakeApiServer

from meshproof.checks.verdict import Verdict
from meshproof.kube import Cluster, ClusterUnreachable, ExecError
from meshproof.kube_objects import RUN_ID_LABEL, TEST_ID_LABEL, ManifestError
from meshproof.kube_wait import ResourceWaitTimeout
from meshproof.wait import WaitTimeout

RUN_ID = "20261126-064501-a3f9"

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: mp-authz}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: mp-authz, labels: {app: httpbin}}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec: {containers: [{name: httpbin, image: "mccutchen/go-httpbin:v2.15.0"}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: mp-authz}
spec: {}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mp-reader, namespace: should-be-dropped}
rules: []
"""


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig", context="kind-fake")


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    c = Cluster("kind-fake", kubeconfig, RUN_ID, poll_interval=0.05)
    yield c
    c.close()


def patches(api: FakeApiServer) -> list[Any]:
    return [r for r in api.requests if r.method == "PATCH"]


# --- apply --------------------------------------------------------------------------------------------


def test_apply_is_forced_server_side_apply_on_discovered_paths(cluster: Cluster, api: FakeApiServer):
    cluster.apply(MANIFESTS, test_id="test-deny-all-1a2b3c")
    sent = patches(api)
    assert [r.path for r in sent] == [
        "/api/v1/namespaces/mp-authz",
        "/apis/apps/v1/namespaces/mp-authz/deployments/httpbin",
        "/apis/security.istio.io/v1/namespaces/mp-authz/authorizationpolicies/deny-all",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/mp-reader",
    ]
    for request in sent:
        assert request.content_type == "application/apply-patch+yaml"
        assert request.query["fieldManager"] == ["meshproof"]
        assert request.query["force"] == ["true"]


def test_every_applied_object_carries_run_and_test_labels(cluster: Cluster, api: FakeApiServer):
    returned = cluster.apply(MANIFESTS, test_id="test-deny-all-1a2b3c")
    for request in patches(api):
        labels = request.body["metadata"]["labels"]
        assert labels[RUN_ID_LABEL] == RUN_ID
        assert labels[TEST_ID_LABEL] == "test-deny-all-1a2b3c"
    assert (
        api.stored("apps/v1", "Deployment", "httpbin", "mp-authz")["metadata"]["labels"]["app"] == "httpbin"
    )
    assert [o["kind"] for o in returned] == ["Namespace", "Deployment", "AuthorizationPolicy", "ClusterRole"]
    assert "namespace" not in patches(api)[-1].body["metadata"]  # cluster-scoped: stray namespace dropped


def test_long_test_ids_are_shortened_to_valid_label_values(cluster: Cluster, api: FakeApiServer):
    long_id = "suites/conformance/test_authz.py::test_deny_all[ambient->waypoint/http-" + "x" * 40 + "]"
    cluster.apply(MANIFESTS.split("---")[0], test_id=long_id)
    value = patches(api)[0].body["metadata"]["labels"][TEST_ID_LABEL]
    assert len(value) <= 63 and "/" not in value and value[-1].isalnum()


def test_apply_takes_parsed_documents_too(cluster: Cluster, api: FakeApiServer):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "mp-x"}, "data": {}}
    cluster.apply([cm])
    assert patches(api)[0].body["metadata"]["labels"] == {RUN_ID_LABEL: RUN_ID}


def test_namespaced_objects_without_namespace_are_refused_before_sending(
    cluster: Cluster, api: FakeApiServer
):
    with pytest.raises(ManifestError, match=r"ConfigMap c: namespaced kind without metadata\.namespace"):
        cluster.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert patches(api) == []


# --- get / list / delete ------------------------------------------------------------------------------


def test_get_returns_none_for_missing_objects(cluster: Cluster):
    assert cluster.get("v1", "ConfigMap", "nope", "default") is None


def test_list_filters_by_label_and_fills_in_kind(cluster: Cluster):
    cluster.apply(MANIFESTS, test_id="t-one")
    cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: mp-authz}\n", test_id="t-two"
    )
    found = cluster.list("v1", "ConfigMap", "mp-authz", label_selector=f"{TEST_ID_LABEL}=t-two")
    assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in found] == [
        ("ConfigMap", "v1", "other")
    ]


def test_core_v1_event_is_not_confused_with_events_k8s_io(cluster: Cluster, api: FakeApiServer):
    cluster.events("mp-authz")
    assert api.requests[-1].path == "/api/v1/namespaces/mp-authz/events"


def test_delete_reports_whether_something_was_deleted_and_can_wait(cluster: Cluster, api: FakeApiServer):
    cluster.apply(MANIFESTS)
    assert cluster.delete("apps/v1", "Deployment", "httpbin", "mp-authz", wait=True, timeout=2) is True
    assert api.stored("apps/v1", "Deployment", "httpbin", "mp-authz") is None
    assert cluster.delete("apps/v1", "Deployment", "httpbin", "mp-authz") is False
    deletes = [r for r in api.requests if r.method == "DELETE"]
    assert deletes[0].query["propagationPolicy"] == ["Background"]


def test_sweep_finds_labelled_objects_of_every_kind_and_survives_a_forbidden_kind(
    cluster: Cluster, api: FakeApiServer
):
    cluster.apply(MANIFESTS, test_id="t-one")
    cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: mp-authz}\n", test_id="t-one"
    )
    api.state.forbidden_plurals.add("configmaps")
    found = cluster.find_labelled(f"{TEST_ID_LABEL}=t-one")
    assert sorted(o["kind"] for o in found) == [
        "AuthorizationPolicy",
        "ClusterRole",
        "Deployment",
        "Namespace",
    ]
    listed = {r.path for r in api.requests if r.method == "GET"}
    assert "/apis/authorization.k8s.io/v1/selfsubjectreviews" not in listed  # not listable: not asked


def test_delete_labelled_deletes_namespaces_first_then_stray_namespaced_then_cluster_scoped(
    cluster: Cluster, api: FakeApiServer
):
    cluster.apply(MANIFESTS)
    stray = (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: strict, namespace: istio-system}\n"
    )
    cluster.apply(stray)
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "namespace": "istio-system",
            "labels": {RUN_ID_LABEL: RUN_ID},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u"}],
        },
    }
    api.put(owned)
    dry = cluster.delete_labelled(f"{RUN_ID_LABEL}={RUN_ID}", dry_run=True)
    assert [r for r in api.requests if r.method == "DELETE"] == []
    deleted = cluster.delete_labelled(f"{RUN_ID_LABEL}={RUN_ID}")
    assert (
        [str(r) for r in deleted]
        == [str(r) for r in dry]
        == [
            "Namespace mp-authz",
            "PeerAuthentication istio-system/strict",
            "ClusterRole mp-reader",
        ]
    )
    assert [r.path for r in api.requests if r.method == "DELETE"] == [
        "/api/v1/namespaces/mp-authz",
        "/apis/security.istio.io/v1/namespaces/istio-system/peerauthentications/strict",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/mp-reader",
    ]


# --- waits --------------------------------------------------------------------------------------------

ISTIOD: dict[str, Any] = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system, generation: 1}
spec:
  replicas: 1
  selector: {matchLabels: {app: istiod}}
status:
  observedGeneration: 1
  replicas: 1
  updatedReplicas: 1
  unavailableReplicas: 1
  conditions:
  - {type: Available, status: "False", reason: MinimumReplicasUnavailable,
     message: Deployment does not have minimum availability.}
"""
)
ISTIOD_POD: dict[str, Any] = yaml.safe_load(
    """
apiVersion: v1
kind: Pod
metadata: {name: istiod-7d4c9f8b6-x2kq9, namespace: istio-system, labels: {app: istiod}}
spec: {containers: [{name: discovery}]}
status:
  phase: Pending
  containerStatuses:
  - name: discovery
    ready: false
    restartCount: 0
    state:
      waiting: {reason: ImagePullBackOff, message: Back-off pulling image "gcr.io/istio-release/pilot:1.27.9"}
"""
)


def test_condition_timeout_names_kind_name_namespace_condition_cluster_and_last_status(
    cluster: Cluster, api: FakeApiServer
):
    api.put(ISTIOD)
    with pytest.raises(ResourceWaitTimeout) as err:
        cluster.wait_for_condition(
            "apps/v1", "Deployment", "istiod", "istio-system", "Available", timeout=0.3
        )
    assert str(err.value) == (
        "Deployment istio-system/istiod on cluster kind-fake: condition Available not True after 0.3s; "
        "last status: Available=False (MinimumReplicasUnavailable: Deployment does not have minimum "
        "availability.), 0/1 replicas ready"
    )
    assert isinstance(err.value, WaitTimeout) and isinstance(err.value, AssertionError)


def test_condition_wait_on_a_missing_object_says_not_found(cluster: Cluster):
    with pytest.raises(
        ResourceWaitTimeout, match=r"Deployment istio-system/istiod .* last status: not found$"
    ):
        cluster.wait_for_condition(
            "apps/v1", "Deployment", "istiod", "istio-system", "Available", timeout=0.2
        )


def test_predicate_wait_shows_the_verdict_reason_as_last_status(cluster: Cluster, api: FakeApiServer):
    api.put(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw", "namespace": "x"}, "status": {}}
    )

    def has_address(svc: dict[str, Any]) -> Verdict:
        ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress")
        return Verdict.passed("has address") if ingress else Verdict.failed("no LoadBalancer ingress yet")

    with pytest.raises(ResourceWaitTimeout) as err:
        cluster.wait_for("v1", "Service", "gw", "x", has_address, "LoadBalancer address", timeout=0.2)
    assert str(err.value) == (
        "Service x/gw on cluster kind-fake: LoadBalancer address: not satisfied after 0.2s; "
        "last status: no LoadBalancer ingress yet"
    )


# --- pods: logs, events, exec ---------------------------------------------------------------------------


def test_events_come_back_oldest_first(cluster: Cluster, api: FakeApiServer):
    for name, when in (("b", "2026-11-26T06:45:09Z"), ("a", "2026-11-26T06:45:01Z")):
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": "x"},
                "lastTimestamp": when,
                "reason": "Pulled",
            }
        )
    assert [e["metadata"]["name"] for e in cluster.events("x")] == ["a", "b"]


def test_exec_that_cannot_open_its_stream_fails_in_one_line(cluster: Cluster):
    with pytest.raises(ExecError) as err:
        cluster.exec("curl-0", "x", ["curl", "-sS", "-H", "Authorization: Bearer abc.def.ghi", "http://y"])
    message = str(err.value)
    assert message.startswith("exec ['curl', '-sS', '-H', 'Authorization: <redacted>")
    assert "in pod x/curl-0 on cluster kind-fake:" in message
    assert "\n" not in message and "abc.def.ghi" not in message


# --- connecting -------------------------------------------------------------------------------------------


def test_server_version(cluster: Cluster):
    assert cluster.server_version() == "v1.33.1"


def test_the_cluster_name_defaults_to_the_context(kubeconfig: Path):
    assert Cluster(None, kubeconfig, RUN_ID).name == "kind-fake"
    assert Cluster("kind-fake", kubeconfig, RUN_ID, "east").name == "east"


def test_unknown_context_lists_the_known_ones(kubeconfig: Path):
    with pytest.raises(ClusterUnreachable, match=r"has no context 'kind-west'; available: kind-fake$"):
        Cluster("kind-west", kubeconfig, RUN_ID)


def test_missing_kubeconfig_file_is_one_line(tmp_path: Path):
    with pytest.raises(ClusterUnreachable, match=r"^--kubeconfig: file .*/nope does not exist$"):
        Cluster(None, tmp_path / "nope", RUN_ID)


def test_unreachable_server_is_one_line_without_credentials(api: FakeApiServer, tmp_path: Path):
    kubeconfig = api.write_kubeconfig(tmp_path / "kc")
    text = kubeconfig.read_text()
    with socket_closed_port() as port:
        kubeconfig.write_text(text.replace(api.url, f"http://127.0.0.1:{port}"))
        cluster = Cluster(None, kubeconfig, RUN_ID)
        for attempt in (cluster.server_version, lambda: cluster.get("v1", "ConfigMap", "c", "x")):
            with pytest.raises(ClusterUnreachable) as err:
                attempt()
            message = str(err.value)
            assert "kind-fake" in message and "\n" not in message
            assert api.state.token not in message


class socket_closed_port:
    """A loopback port nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        pass
