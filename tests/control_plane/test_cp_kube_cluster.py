"""meshproof.kube.Cluster against a real kube-apiserver v1.34.4, controller-manager, scheduler and KWOK.

These prove the cluster mechanics the fake apiserver (tests/fixtures_data/kube_apiserver.py) cannot:
server-side apply field ownership and conflicts, defaulting and validation, status written by real
controllers, the scheduler's events, exec / logs / port-forward streams through the apiserver to a kubelet
endpoint (KWOK's), RBAC, finalizers and a stalled apiserver. None of it is Istio-specific; nothing here says
anything about a data plane (KWOK pods run no containers: exec runs on this machine, logs come from a file
the tier wrote, port-forward reaches a local listener).
"""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures_data.control_plane import ControlPlane
from kubernetes import client as k8s

from meshproof.kube import Cluster, ClusterError, ClusterUnreachable, ExecError, KubeApiError
from meshproof.kube_objects import FIELD_MANAGER, RUN_ID_LABEL, TEST_ID_LABEL, selector_for_run
from meshproof.kube_wait import ResourceWaitTimeout
from meshproof.wait import eventually

pytestmark = pytest.mark.control_plane


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def deployment(
    name: str, namespace: str, replicas: int = 1, node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": node_selector or {"type": "kwok"},
                    "containers": [{"name": "app", "image": "registry.invalid/never-pulled:1"}],
                },
            },
        },
    }


def deployment_status(cluster: Cluster, name: str, namespace: str, field: str) -> dict[str, Any]:
    """Wait until the Deployment controller has written `status.<field>`."""
    return cluster.wait_for(
        "apps/v1",
        "Deployment",
        name,
        namespace,
        lambda d: d.get("status", {}).get(field),
        f"status.{field} written",
        timeout=30,
    )


def managers(obj: dict[str, Any]) -> dict[str, str]:
    return {m["manager"]: m["operation"] for m in obj["metadata"].get("managedFields") or []}


# --- server-side apply -------------------------------------------------------------------------------------


def test_apply_is_server_side_with_one_field_manager(cluster: Cluster, namespace: str) -> None:
    """Every apply is a server-side apply by the manager "meshproof"; re-applying changes, not duplicates."""
    first = cluster.apply([configmap("owned", namespace, a="1")], test_id="t-owned")[0]
    second = cluster.apply([configmap("owned", namespace, a="2")], test_id="t-owned")[0]

    assert managers(first) == {FIELD_MANAGER: "Apply"}
    assert managers(second) == {FIELD_MANAGER: "Apply"}
    assert second["data"] == {"a": "2"}
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert second["metadata"]["labels"][RUN_ID_LABEL] == cluster.run_id
    assert second["metadata"]["labels"][TEST_ID_LABEL] == "t-owned"


def test_apply_takes_over_fields_another_manager_owns(
    cluster: Cluster, namespace: str, control_plane: ControlPlane
) -> None:
    """meshproof forces conflicts: a field another manager set becomes meshproof's, and that manager's next
    unforced apply now conflicts (the apiserver's own ownership bookkeeping, not ours)."""
    other = "kubectl-other"
    doc = (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: shared, namespace: {namespace}}}\ndata: {{key: theirs}}\n"
    )
    control_plane.kubectl("apply", "--server-side", f"--field-manager={other}", "-f", "-", stdin=doc)

    taken = cluster.apply([configmap("shared", namespace, key="ours")])[0]

    assert taken["data"] == {"key": "ours"}
    owners = {m["manager"]: m for m in taken["metadata"]["managedFields"]}
    assert "f:key" in str(owners[FIELD_MANAGER]["fieldsV1"])
    assert "f:key" not in str(owners.get(other, {}).get("fieldsV1", ""))
    # negative control: the other manager, unforced, is now refused with the apiserver's conflict
    again = control_plane.kubectl(
        "apply", "--server-side", f"--field-manager={other}", "-f", "-", stdin=doc, check=False
    )
    assert again.returncode != 0
    assert "conflict" in again.stderr.lower() and FIELD_MANAGER in again.stderr


def test_apiserver_defaults_and_validates_what_is_applied(cluster: Cluster, namespace: str) -> None:
    """The object read back carries the apiserver's defaults; an invalid one fails as one line naming it."""
    applied = cluster.apply([deployment("defaults", namespace, replicas=0)])[0]
    spec = applied["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad-port", "namespace": namespace},
        "spec": {"ports": [{"port": 70000}]},
    }
    with pytest.raises(KubeApiError) as caught:
        cluster.apply([bad])
    message = str(caught.value)
    assert message.startswith(
        f"apply Service {namespace}/bad-port on cluster control-plane failed: 422 Unprocessable Entity: "
        'Service "bad-port" is invalid: '
    )
    assert "70000" in message and "\n" not in message
    assert caught.value.status == 422


def test_a_kind_the_apiserver_does_not_serve_says_so(cluster: Cluster) -> None:
    widget = {
        "apiVersion": "example.invalid/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "x"},
    }
    with pytest.raises(ClusterError, match=r"does not serve Widget \(example.invalid/v1\); is its CRD"):
        cluster.apply([widget])


def test_delete_reports_whether_it_deleted_and_waits_for_garbage_collection(
    cluster: Cluster, namespace: str
) -> None:
    """Background propagation: the Deployment goes at once, the garbage collector removes its ReplicaSet."""
    cluster.apply([deployment("short-lived", namespace, replicas=0)])
    deployment_status(cluster, "short-lived", namespace, "observedGeneration")
    assert cluster.delete("apps/v1", "Deployment", "short-lived", namespace, wait=True, timeout=30) is True
    assert cluster.delete("apps/v1", "Deployment", "short-lived", namespace) is False
    eventually(
        lambda: _assert_empty(
            cluster.list("apps/v1", "ReplicaSet", namespace, label_selector="app=short-lived")
        ),
        timeout=60,
        interval=0.5,
        description="ReplicaSet garbage-collected",
    )


def _assert_empty(items: list[Any]) -> None:
    assert items == [], [i["metadata"]["name"] for i in items]


# --- waits on real status ----------------------------------------------------------------------------------


def test_wait_rollout_completes_on_status_the_controllers_write(cluster: Cluster, namespace: str) -> None:
    """The Deployment controller, the scheduler and KWOK (as kubelet) move two pods to Ready; wait_rollout
    returns the status they wrote. Negative control: a Deployment no node can take times out naming its
    pods' state."""
    cluster.apply([deployment("rolls", namespace, replicas=2)])
    done = cluster.wait_rollout("Deployment", "rolls", namespace, timeout=90)
    assert done["status"]["readyReplicas"] == 2
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"]
    pods = cluster.pods(namespace, "app=rolls")
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}
    assert all(p["status"]["podIP"] for p in pods)

    cluster.apply([deployment("stuck", namespace, node_selector={"type": "no-such-node"})])
    with pytest.raises(ResourceWaitTimeout) as caught:
        cluster.wait_rollout("Deployment", "stuck", namespace, timeout=6)
    message = str(caught.value)
    assert message.startswith(
        f"Deployment {namespace}/stuck on cluster control-plane: rollout not complete after 6"
    )
    assert "; pods: stuck-" in message and "Pending" in message and "\n" not in message


def test_wait_for_condition_reads_real_pod_conditions(cluster: Cluster, namespace: str) -> None:
    cluster.apply([deployment("cond", namespace)])
    cluster.wait_rollout("Deployment", "cond", namespace, timeout=90)
    pod = cluster.pods(namespace, "app=cond")[0]["metadata"]["name"]
    ready = cluster.wait_for_condition("v1", "Pod", pod, namespace, "Ready", timeout=30)
    assert ready["status"]["phase"] == "Running"

    # negative control: a pod the scheduler cannot place has PodScheduled=False, never Ready
    cluster.apply([deployment("unplaced", namespace, node_selector={"type": "no-such-node"})])
    deployment_status(cluster, "unplaced", namespace, "replicas")
    unplaced = cluster.pods(namespace, "app=unplaced")[0]["metadata"]["name"]
    with pytest.raises(ResourceWaitTimeout) as caught:
        cluster.wait_for_condition("v1", "Pod", unplaced, namespace, "Ready", timeout=4)
    assert "Ready" in str(caught.value) and unplaced in str(caught.value)
    scheduled = cluster.wait_for_condition(
        "v1", "Pod", unplaced, namespace, "PodScheduled", status="False", timeout=30
    )
    assert scheduled["status"]["phase"] == "Pending"


# --- pods: events, logs, exec, port-forward (KWOK is the kubelet) ----------------------------------------


@pytest.fixture
def running_pod(cluster: Cluster, namespace: str) -> str:
    cluster.apply([deployment("streams", namespace)])
    cluster.wait_rollout("Deployment", "streams", namespace, timeout=90)
    return str(cluster.pods(namespace, "app=streams")[0]["metadata"]["name"])


def test_events_come_from_the_real_scheduler(cluster: Cluster, namespace: str, running_pod: str) -> None:
    events = cluster.events(namespace, field_selector=f"involvedObject.name={running_pod}")
    scheduled = [e for e in events if e.get("reason") == "Scheduled"]
    assert scheduled, f"no Scheduled event for {running_pod}: {[e.get('reason') for e in events]}"
    assert "kwok-node-0" in scheduled[0]["message"]
    # negative control: events are per object; another name has none of them
    assert cluster.events(namespace, field_selector="involvedObject.name=no-such-pod") == []


def test_logs_stream_through_the_apiserver_from_the_kubelet(
    cluster: Cluster, namespace: str, running_pod: str, control_plane: ControlPlane
) -> None:
    """Current, tail and previous logs through the apiserver's kubelet proxy (KWOK serves the files up.sh
    wrote); a container the pod lacks fails as one line naming the pod, container and cluster."""
    current, previous = control_plane.kwok_log(), control_plane.kwok_log(previous=True)
    assert cluster.logs(running_pod, namespace) == current
    assert cluster.logs(running_pod, namespace, container="app", tail_lines=1) == current.splitlines(True)[-1]
    assert cluster.logs(running_pod, namespace, container="app", previous=True) == previous
    with pytest.raises(KubeApiError) as caught:
        cluster.logs(running_pod, namespace, container="no-such-container")
    message = str(caught.value)
    assert message.startswith(
        f"logs of pod {namespace}/{running_pod} container no-such-container on cluster control-plane failed: "
        "400 Bad Request: "
    )
    assert "no-such-container" in message.split("400 Bad Request: ", 1)[1] and "\n" not in message


def test_exec_separates_stdout_stderr_and_stdin(cluster: Cluster, namespace: str, running_pod: str) -> None:
    """The exec websocket (v5 channel protocol) through the apiserver to KWOK, which runs the command here.

    KWOK reports a non-zero exit as an internal error rather than a kubelet's NonZeroExitCode status, so
    exit codes are proven on scripted frames in tests/unit/test_kube_exec.py; here a failing command must
    at least never read as success."""
    result = cluster.exec(running_pod, namespace, ["sh", "-c", "echo out; echo err >&2"], timeout=30)
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)
    # `head -c`, not `cat`: the end of stdin is signalled with the v5 close frame, and what KWOK's
    # stream server negotiates does not carry it (a `cat` here never exits); the bytes do arrive.
    piped = cluster.exec(running_pod, namespace, ["head", "-c", "13"], stdin="through stdin", timeout=30)
    assert piped.ok and piped.stdout == "through stdin"
    with pytest.raises(ExecError) as caught:
        cluster.exec(running_pod, namespace, ["sh", "-c", "exit 3"], timeout=30)
    assert "\n" not in str(caught.value) and f"pod {namespace}/{running_pod}" in str(caught.value)


def test_port_forward_reaches_the_pod_port(
    cluster: Cluster, namespace: str, running_pod: str, control_plane: ControlPlane
) -> None:
    """cluster.port_forward opens the SPDY/websocket stream through the apiserver; KWOK connects it to the
    tier's forward port, where this test listens and answers with a token only it knows."""
    token = uuid.uuid4().hex

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = token.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", control_plane.port("KWOK_FORWARD")), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with cluster.port_forward(running_pod, namespace, 8080) as local_port:
            url = f"http://127.0.0.1:{local_port}/"
            with urllib.request.urlopen(url, timeout=15) as response:
                assert response.read().decode() == token
    finally:
        server.shutdown()
        server.server_close()


# --- labels, cleanup, finalizers ---------------------------------------------------------------------------


def test_cleanup_by_run_id_removes_what_the_run_labelled_and_waits_out_finalizers(
    control_plane: ControlPlane,
) -> None:
    run_id = f"cp-clean-{uuid.uuid4().hex[:6]}"
    other_run = f"cp-keep-{uuid.uuid4().hex[:6]}"
    ns = f"{run_id}-ns"
    with control_plane.cluster(run_id, poll_interval=0.3) as c, control_plane.cluster(other_run) as keep:
        c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
        held = configmap("held", ns, a="1")
        held["metadata"]["finalizers"] = ["meshproof.io/test-hold"]
        c.apply([held, deployment("owned-pods", ns)])
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{run_id}-role"},
            "rules": [],
        }
        c.apply([role])
        kept = keep.apply(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": f"{other_run}-role"},
                    "rules": [],
                }
            ]
        )
        c.wait_rollout("Deployment", "owned-pods", ns, timeout=90)

        # everything the run created, and only that, carries the run label; pods are the controller's
        labelled = {(o["kind"], o["metadata"]["name"]) for o in c.find_labelled(selector_for_run(run_id))}
        assert labelled == {
            ("Namespace", ns),
            ("ConfigMap", "held"),
            ("Deployment", "owned-pods"),
            ("ClusterRole", f"{run_id}-role"),
        }

        deleted = {str(r) for r in c.delete_labelled(selector_for_run(run_id))}
        assert deleted == {f"Namespace {ns}", f"ClusterRole {run_id}-role"}  # contents go with the namespace
        # the finalizer holds the ConfigMap and so the namespace; the wait says which finalizer
        with pytest.raises(ResourceWaitTimeout) as caught:
            c.delete("v1", "ConfigMap", "held", ns, wait=True, timeout=3)
        assert "meshproof.io/test-hold" in str(caught.value)
        c.core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
        c.delete("v1", "Namespace", ns, wait=True, timeout=120)

        assert c.find_labelled(selector_for_run(run_id)) == []
        assert keep.get("rbac.authorization.k8s.io/v1", "ClusterRole", kept[0]["metadata"]["name"])
        keep.delete_labelled(selector_for_run(other_run))


# --- RBAC and a stalled apiserver --------------------------------------------------------------------------


def test_rbac_denial_is_one_clear_line_without_the_token(
    cluster: Cluster, namespace: str, control_plane: ControlPlane
) -> None:
    """A ServiceAccount with no RoleBinding is denied by the real RBAC authorizer; the error names the
    verb, kind and identity in one line and never carries the bearer token."""
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "nobody", "namespace": namespace},
            }
        ]
    )
    token = control_plane.kubectl(
        "create", "token", "nobody", "-n", namespace, "--duration=10m"
    ).stdout.strip()
    config = k8s.Configuration()
    config.host = control_plane.env["MESHPROOF_CP_APISERVER"]
    config.ssl_ca_cert = str(control_plane.state / "pki" / "ca.crt")
    config.api_key = {"authorization": f"Bearer {token}"}
    limited = Cluster.from_api_client(k8s.ApiClient(config), run_id=cluster.run_id, name="as-nobody")
    with limited, pytest.raises(KubeApiError) as caught:
        limited.apply([configmap("denied", namespace, a="1")])
    message = str(caught.value)
    assert caught.value.status == 403
    assert "\n" not in message
    assert "forbidden" in message.lower() and f"system:serviceaccount:{namespace}:nobody" in message
    assert token not in message and token[:20] not in message
    # positive control: the same request as the admin is allowed
    assert cluster.apply([configmap("denied", namespace, a="1")])


def test_rejected_credentials_are_named_by_status_not_by_value(control_plane: ControlPlane) -> None:
    config = k8s.Configuration()
    config.host = control_plane.env["MESHPROOF_CP_APISERVER"]
    config.ssl_ca_cert = str(control_plane.state / "pki" / "ca.crt")
    config.api_key = {"authorization": "Bearer wrong-token-value"}
    with pytest.raises(ClusterUnreachable) as caught:
        Cluster.from_api_client(k8s.ApiClient(config), run_id="x", name="bad-token").server_version()
    assert "401" in str(caught.value) and "wrong-token-value" not in str(caught.value)


@pytest.fixture
def frozen_apiserver(control_plane: ControlPlane) -> Iterator[int]:
    pid = control_plane.pid("kube-apiserver")
    yield pid
    os.kill(pid, signal.SIGCONT)  # whatever happened, the tier runs on


def test_a_wait_survives_an_apiserver_that_stops_answering(
    cluster: Cluster, namespace: str, frozen_apiserver: int, control_plane: ControlPlane
) -> None:
    """SIGSTOP freezes the real apiserver mid-wait: the wait ends at its own deadline with one line naming
    the API failure (no hang), and a wait after SIGCONT succeeds on the same client."""
    cluster.apply([configmap("watched", namespace, a="1")])
    with control_plane.cluster(cluster.run_id, request_timeout=1.5, poll_interval=0.3) as short:
        short.get("v1", "ConfigMap", "watched", namespace)  # discovery done while it answers
        os.kill(frozen_apiserver, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ResourceWaitTimeout) as caught:
            short.wait_for_condition("v1", "ConfigMap", "watched", namespace, "Never", timeout=5)
        elapsed = time.monotonic() - started
        os.kill(frozen_apiserver, signal.SIGCONT)
        message = str(caught.value)
        assert elapsed < 15, f"the wait overran its 5 s deadline by {elapsed - 5:.1f} s"
        assert "\n" not in message and "API error" in message and "watched" in message
        got = short.wait_for(
            "v1",
            "ConfigMap",
            "watched",
            namespace,
            lambda o: o["data"] == {"a": "1"},
            "data visible again",
            timeout=30,
        )
        assert got["metadata"]["name"] == "watched"
