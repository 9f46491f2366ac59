"""Collectors with a fake command runner and a fake cluster; the metrics scrape is a real HTTP GET to a
loopback server standing in for the port-forwarded ztunnel.

What this cannot prove: that istioctl accepts these arguments against a live mesh (the argument lists
follow istioctl 1.27's ztunnel-config and proxy-config commands), or that the real Cluster's
port-forward, logs and exec behave like the fakes (helper "kube" tests those).
"""

from __future__ import annotations

import http.server
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fixtures_data.servers import serving_in_background
from fixtures_data.ztunnel_captures import access_records, istiod_workloads_json, log_text, metrics_text

from meshproof.evidence.collect import (
    Istioctl,
    authorization_policy,
    envoy_metrics,
    proxy_secrets,
    ztunnel_access_logs,
    ztunnel_certificates,
    ztunnel_metrics,
    ztunnel_pod_on_node,
    ztunnel_workloads,
    ztunnels_in_cluster,
)
from meshproof.evidence.errors import EvidenceCollectionError


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str = ""


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int


@dataclass
class FakeRunner:
    outputs: list[Result]
    calls: list[tuple[list[str], float, bool]] = field(default_factory=list)

    def __call__(self, args: Sequence[str], *, timeout: float, check: bool = True) -> Result:
        self.calls.append((list(args), timeout, check))
        return self.outputs.pop(0)


def test_ztunnel_workloads_runs_istioctl_with_kube_flags_and_parses() -> None:
    runner = FakeRunner([Result(0, istiod_workloads_json())])
    istioctl = Istioctl(
        run=runner, binary="/cache/istioctl", kubeconfig=Path("/tmp/kc"), context="kind-a", timeout=30
    )

    workloads = ztunnel_workloads(istioctl, "ztunnel", workload_namespace="mp-ambient")

    assert len(workloads) == 3
    args, timeout, check = runner.calls[0]
    assert args == [
        "/cache/istioctl", "ztunnel-config", "workloads", "-n", "ztunnel", "-o", "json",
        "--workload-namespace", "mp-ambient", "--kubeconfig", "/tmp/kc", "--context", "kind-a",
    ]  # fmt: skip
    assert (timeout, check) == (30, False)


def test_certificates_and_secrets_target_one_pod() -> None:
    runner = FakeRunner([Result(0, "[]"), Result(0, "{}")])
    istioctl = Istioctl(run=runner)

    assert ztunnel_certificates(istioctl, "ztunnel-x8k2p", "ztunnel") == []
    assert proxy_secrets(istioctl, "echo-5c7d-abcde", "mp-sidecar").workload_chain_pem is None

    assert runner.calls[0][0] == [
        "istioctl",
        "ztunnel-config",
        "certificates",
        "ztunnel-x8k2p.ztunnel",
        "-o",
        "json",
    ]
    assert runner.calls[1][0] == [
        "istioctl",
        "proxy-config",
        "secret",
        "echo-5c7d-abcde",
        "-n",
        "mp-sidecar",
        "-o",
        "json",
    ]


def test_istioctl_failure_is_one_line_with_its_stderr() -> None:
    runner = FakeRunner(
        [Result(1, "", 'Error: failed to execute command on ztunnel-x.ztunnel Ztunnel: pods "x" not found\n')]
    )

    with pytest.raises(EvidenceCollectionError, match=r"exited 1: Error: failed .* not found$"):
        ztunnel_workloads(Istioctl(run=runner), "ztunnel")


def test_unparseable_output_becomes_a_collection_error() -> None:
    runner = FakeRunner([Result(0, "WARNING: Not supported in OpenShift Service Mesh context\n")])

    with pytest.raises(EvidenceCollectionError, match=r"ztunnel-config workloads: .*not JSON"):
        ztunnel_workloads(Istioctl(run=runner), "ztunnel")


def _pod(name: str, node: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase}}


@dataclass
class FakeCluster:
    pod_list: list[dict[str, Any]] = field(default_factory=list)
    log_text: str = ""
    forwarded_port: int = 0
    exec_result: Any = None
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.calls.append(("pods", namespace, label_selector))
        return self.pod_list

    def logs(
        self, pod: str, namespace: str, container: str | None = None, *, since_seconds: int | None = None
    ) -> str:
        self.calls.append(("logs", pod, namespace, container, since_seconds))
        return self.log_text

    @contextmanager
    def port_forward(self, pod: str, namespace: str, port: int) -> Iterator[int]:
        self.calls.append(("port_forward", pod, namespace, port))
        yield self.forwarded_port

    def exec(
        self, pod: str, namespace: str, command: list[str], container: str | None = None, *, timeout: float
    ) -> Any:
        self.calls.append(("exec", pod, namespace, command, container))
        return self.exec_result

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.objects.get((name, namespace or ""))


def test_ztunnel_pod_on_node_picks_the_running_one() -> None:
    cluster = FakeCluster(
        pod_list=[
            _pod("ztunnel-old", "kind-worker", "Succeeded"),
            _pod("ztunnel-a", "kind-worker"),
            _pod("ztunnel-b", "kind-worker2"),
        ]
    )

    assert ztunnel_pod_on_node(cluster, "ztunnel", "kind-worker2") == "ztunnel-b"
    assert ztunnel_pod_on_node(cluster, "ztunnel", "kind-worker") == "ztunnel-a"
    assert cluster.calls[0] == ("pods", "ztunnel", "app=ztunnel")
    with pytest.raises(EvidenceCollectionError, match="no running ztunnel pod on node 'kind-worker3'"):
        ztunnel_pod_on_node(cluster, "ztunnel", "kind-worker3")


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[int]:
    _MetricsHandler.body = metrics_text("node2").encode()
    with serving_in_background(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)) as server:
        yield server.server_address[1]


def test_ztunnel_metrics_scrapes_the_forwarded_port(metrics_server: int) -> None:
    cluster = FakeCluster(forwarded_port=metrics_server)

    samples = ztunnel_metrics(cluster, "ztunnel-a", "ztunnel")

    assert cluster.calls == [("port_forward", "ztunnel-a", "ztunnel", 15020)]
    assert any(s.name == "istio_tcp_connections_opened_total" for s in samples)


def test_ztunnel_metrics_unreachable_port_is_a_collection_error() -> None:
    with socket_closed_port() as port:
        cluster = FakeCluster(forwarded_port=port)
        with pytest.raises(
            EvidenceCollectionError, match=r"scraping ztunnel-a\.ztunnel:15020/metrics failed"
        ):
            ztunnel_metrics(cluster, "ztunnel-a", "ztunnel", timeout=2)


@contextmanager
def socket_closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]  # bound but not listening: connections are refused


def test_ztunnel_access_logs_and_envoy_metrics() -> None:
    cluster = FakeCluster(
        log_text=log_text("node2"),
        exec_result=ExecResult('istio_requests_total{reporter="destination"} 4\n', "", 0),
    )

    records = ztunnel_access_logs(cluster, "ztunnel-a", "ztunnel", since_seconds=120)
    samples = envoy_metrics(cluster, "echo-5c7d-abcde", "mp-sidecar")

    assert len(records) == len(access_records("node2"))
    assert ("logs", "ztunnel-a", "ztunnel", None, 120) in cluster.calls
    assert samples[0].value == 4
    scrape = ["pilot-agent", "request", "GET", "stats/prometheus"]
    assert ("exec", "echo-5c7d-abcde", "mp-sidecar", scrape, "istio-proxy") in cluster.calls


def test_envoy_metrics_exec_failure() -> None:
    cluster = FakeCluster(exec_result=ExecResult("", 'error: container "istio-proxy" not found', 1))

    with pytest.raises(EvidenceCollectionError, match="exited 1: error: container"):
        envoy_metrics(cluster, "plain-pod", "mp-outside")


def test_authorization_policy_fetch() -> None:
    policy = {"metadata": {"name": "deny", "namespace": "mp-ambient"}}
    cluster = FakeCluster(objects={("deny", "mp-ambient"): policy})

    assert authorization_policy(cluster, "deny", "mp-ambient") is policy
    with pytest.raises(EvidenceCollectionError, match="AuthorizationPolicy mp-ambient/missing not found"):
        authorization_policy(cluster, "missing", "mp-ambient")


class LabelledCluster:
    """Objects with labels; `list` applies an equality label selector like the API server does."""

    def __init__(self, objects: list[tuple[str, dict[str, Any]]]) -> None:
        self.objects = objects

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if term)
        return [
            obj
            for obj_kind, obj in self.objects
            if obj_kind == kind
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]


# Labels as istio/istio@1.27.9 manifests/charts/ztunnel/templates/daemonset.yaml renders them: the
# DaemonSet has app.kubernetes.io/name only; `app: ztunnel` is on the pod template (and so the pods).
ZTUNNEL_DAEMONSET = {
    "metadata": {"name": "ztunnel", "namespace": "ztunnel", "labels": {"app.kubernetes.io/name": "ztunnel"}}
}
ZTUNNEL_POD = {
    "metadata": {
        "name": "ztunnel-x7k2p",
        "namespace": "ztunnel",
        "labels": {"app": "ztunnel", "app.kubernetes.io/name": "ztunnel", "istio.io/dataplane-mode": "none"},
    }
}


def test_ztunnels_in_cluster_finds_the_chart_daemonset_and_its_pods() -> None:
    cluster = LabelledCluster([("DaemonSet", ZTUNNEL_DAEMONSET), ("Pod", ZTUNNEL_POD)])

    # The selector the sidecar-mode negative control used before finds no DaemonSet: it could never fail.
    assert cluster.list("apps/v1", "DaemonSet", label_selector="app=ztunnel") == []
    assert ztunnels_in_cluster(cluster) == ["DaemonSet ztunnel/ztunnel", "Pod ztunnel/ztunnel-x7k2p"]
    assert ztunnels_in_cluster(LabelledCluster([("Pod", ZTUNNEL_POD)])) == ["Pod ztunnel/ztunnel-x7k2p"]
    assert ztunnels_in_cluster(LabelledCluster([])) == []
