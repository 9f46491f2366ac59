"""The cluster side of the benchmark against a fake cluster: rendered arm manifests, deployment and path
checks, fortio by exec, distributed Locust from its master log, and resource sampling from PodMetrics.

What this cannot prove: that the manifests schedule and run on a real cluster, that a real mesh puts the
signs (XFCC, redirection annotation, WaypointBound) where the path check looks, or that metrics-server
answers in this shape on every version. The fake answers in the documented shapes (output-formats §1,
istio-facts §2-3, metrics.k8s.io v1beta1); the suite in suites/benchmark is the real-cluster test.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures_data.bench_runs import pod_metrics

from meshproof.bench.cluster import (
    ArmDeployment,
    ArmSettings,
    ClusterExecutor,
    arm_namespace,
    check_path,
    deploy_arm,
    locust_master_documents,
    locust_worker_documents,
    render_arm,
    render_documents,
    resource_targets,
    wait_for_path,
)
from meshproof.bench.locust import JSON_BEGIN, JSON_END, LocustLoad
from meshproof.bench.pathcheck import client_cert_header, verify_path
from meshproof.bench.plan import BenchPlan, LoadPoint, PodSizing
from meshproof.bench.resources import (
    ContainerTarget,
    MetricsApiSource,
    PrometheusSource,
    ResourceSampler,
    cpu_millicores,
    memory_mib,
)

RUN_ID = "20261126-064501-a3f9"
SETTINGS = ArmSettings(
    run_id=RUN_ID, sizing=PodSizing(), placement="cross-node", revision=None, run_as_user=65532
)
XFCC = (
    'X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/b/sa/fortio-server;Hash=ab12;Subject="";'
    "URI=spiffe://cluster.local/ns/b/sa/fortio-client"
)


def debug_body(*headers: str) -> str:
    # fortio /debug layout (output-formats §1.4)
    lines = [
        "Φορτίο version 1.68.2 h1:abc= go1.26.8 amd64 linux echo debug server up for 1m2.3s "
        "on fortio-server-6d9 - request from 10.244.1.7:43210",
        "",
        "GET /debug HTTP/1.1",
        "",
        "headers:",
        "",
        "Host: fortio-server.ns:8080",
        "User-Agent: fortio.org/fortio-1.68.2",
        *headers,
        "",
        "body:",
        "",
        "",
    ]
    return "\n".join(lines)


def fortio_json(count: int = 30000, actual_qps: float = 999.7, requested: str = "1000") -> str:
    buckets = [(0.0004, 0.0005, 0.3), (0.0005, 0.0006, 0.5), (0.0006, 0.0008, 0.15), (0.0008, 0.002, 0.05)]
    data, cumulative = [], 0
    for start, end, share in buckets:
        n = int(count * share)
        cumulative += n
        data.append({"Start": start, "End": end, "Percent": 100 * cumulative / count, "Count": n})
    return json.dumps(
        {
            "RunType": "HTTP",
            "Labels": "x",
            "StartTime": "2026-11-26T06:50:00.000000001Z",
            "RequestedQPS": requested,
            "RequestedDuration": "30s",
            "ActualQPS": actual_qps,
            "ActualDuration": 30_010_000_000,
            "NumThreads": 16,
            "Version": "1.68.2",
            "DurationHistogram": {
                "Count": count,
                "Min": 0.0004,
                "Max": 0.002,
                "Sum": count * 0.00056,
                "Avg": 0.00056,
                "StdDev": 0.0001,
                "Data": data,
                "Percentiles": [{"Percentile": 50, "Value": 0.00053}, {"Percentile": 99, "Value": 0.0011}],
            },
            "RetCodes": {"200": count},
            "URL": "http://fortio-server.x:8080/echo",
            "SocketCount": 16,
        }
    )


def pod(
    name: str, node: str, *, sidecar: bool = False, ambient: bool = False, labels: dict | None = None
) -> dict:
    annotations: dict[str, str] = {}
    init: list[dict] = []
    if sidecar:
        annotations["sidecar.istio.io/status"] = '{"containers":["istio-proxy"]}'
        init.append({"name": "istio-proxy", "restartPolicy": "Always"})  # native sidecar (istio-facts §0)
    if ambient:
        annotations["ambient.istio.io/redirection"] = "enabled"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "annotations": annotations,
            "labels": labels or {},
            "creationTimestamp": "2026-11-26T06:40:00Z",
        },
        "spec": {"nodeName": node, "containers": [{"name": "fortio"}], "initContainers": init},
        "status": {"phase": "Running"},
    }


class FakeCluster:
    """Answers like meshproof.kube.Cluster; records what it was asked to do."""

    def __init__(self, arm: str = "sidecar") -> None:
        self.arm = arm
        self.applied: list[dict] = []
        self.deleted: list[tuple[str, str]] = []
        self.waits: list[tuple] = []
        self.execs: list[list[str]] = []
        self.metric_calls = 0
        self.lock = threading.Lock()
        self.debug = debug_body(XFCC) if arm == "sidecar" else debug_body()
        self.master_log = ""

    def apply(self, docs: str | Sequence[dict], *, test_id: str | None = None) -> list[dict]:
        batch = list(docs) if not isinstance(docs, str) else render_documents(docs)
        self.applied.extend(batch)
        return batch

    def _pods(self) -> dict[str, dict]:
        mesh = {"sidecar": self.arm == "sidecar", "ambient": self.arm in ("ambient", "waypoint")}
        return {
            "fortio-server-1": pod("fortio-server-1", "worker-b", labels={"app": "fortio-server"}, **mesh),
            "fortio-client-1": pod("fortio-client-1", "worker-a", labels={"app": "fortio-client"}, **mesh),
            "locust-worker-1": pod("locust-worker-1", "worker-a", labels={"app": "locust-worker"}),
            "locust-master-1": {
                **pod("locust-master-1", "worker-a", labels={"app": "locust-master"}),
                "status": {"phase": "Running", "podIP": "10.244.1.9"},
            },
            "waypoint-1": pod(
                "waypoint-1", "worker-c", labels={"gateway.networking.k8s.io/gateway-name": "waypoint"}
            ),
        }

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        if kind == "Pod":
            return self._pods().get(name)
        if kind == "Service":
            bound = self.arm == "waypoint"
            return {"status": {"conditions": [{"type": "istio.io/WaypointBound", "status": str(bound)}]}}
        if kind == "PodMetrics":
            with self.lock:
                self.metric_calls += 1
                tick = self.metric_calls
            return pod_metrics(
                name,
                namespace,
                tick,
                {
                    "fortio": {"cpu": "150000000n", "memory": "20480Ki"},
                    "istio-proxy": {"cpu": "210m", "memory": "60Mi"},
                },
            )
        return None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict]:
        if label_selector == "app=ztunnel":
            return [
                {"metadata": {"name": f"ztunnel-{n}", "namespace": "ztunnel"}, "spec": {"nodeName": n}}
                for n in ("worker-a", "worker-b", "worker-c")
            ]
        return []

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float = 120.0,
    ) -> bool:
        self.deleted.append((kind, name))
        return True

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict]:
        key, _, value = (label_selector or "").partition("=")
        return [p for p in self._pods().values() if p["metadata"]["labels"].get(key) == value]

    def exec(
        self,
        pod: str,
        namespace: str,
        command: Sequence[str],
        container: str | None = None,
        timeout: float = 60.0,
        stdin: str | None = None,
    ) -> Any:
        self.execs.append(list(command))
        if command[:2] == ["fortio", "curl"]:
            return SimpleNamespace(stdout=self.debug, stderr="HTTP/1.1 200 OK\r\n", exit_code=0)
        return SimpleNamespace(stdout=fortio_json(), stderr="", exit_code=0)

    def logs(
        self,
        pod: str,
        namespace: str,
        container: str | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> str:
        return self.master_log

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> dict:
        self.waits.append(("rollout", kind, name))
        return {}

    def wait_for_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        condition: str,
        *,
        status: str = "True",
        timeout: float,
    ) -> dict:
        self.waits.append(("condition", kind, name, condition))
        return {}


def docs_of(arm: str, settings: ArmSettings = SETTINGS) -> list[dict]:
    return render_documents(render_arm(arm, settings))


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def test_arm_namespaces_carry_the_enrollment_labels() -> None:
    labels = {
        arm: find(docs_of(arm), "Namespace")["metadata"]["labels"]
        for arm in ("no-mesh", "sidecar", "ambient", "waypoint")
    }
    assert labels["no-mesh"]["istio-injection"] == "disabled"
    assert labels["sidecar"]["istio-injection"] == "enabled"
    assert (
        labels["ambient"]["istio.io/dataplane-mode"] == "ambient"
        and "istio.io/use-waypoint" not in labels["ambient"]
    )
    assert labels["waypoint"]["istio.io/use-waypoint"] == "waypoint"
    assert all(v["meshproof.io/bench-arm"] == arm for arm, v in labels.items())
    assert find(docs_of("no-mesh"), "Namespace")["metadata"]["name"] == arm_namespace(RUN_ID, "no-mesh")
    revisioned = ArmSettings(run_id=RUN_ID, sizing=PodSizing(), placement="any", revision="1-27-9")
    assert find(docs_of("sidecar", revisioned), "Namespace")["metadata"]["labels"]["istio.io/rev"] == "1-27-9"


def _workload_shape(doc: dict) -> dict:
    shape = copy.deepcopy(doc)
    shape["metadata"].pop("namespace", None)
    shape["metadata"]["labels"].pop("meshproof.io/bench-arm", None)
    template = shape.get("spec", {}).get("template", {})
    template.get("metadata", {}).pop("annotations", None)
    for key in ("meshproof.io/bench-arm", "sidecar.istio.io/inject", "istio.io/dataplane-mode"):
        template.get("metadata", {}).get("labels", {}).pop(key, None)
    affinity = template.get("spec", {}).get("affinity")
    if affinity:
        for term in affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]:
            term["labelSelector"]["matchLabels"].pop("meshproof.io/bench-arm", None)
    return shape


def test_the_arms_are_identical_apart_from_enrollment() -> None:
    shapes = {}
    for arm in ("no-mesh", "sidecar", "ambient", "waypoint"):
        docs = docs_of(arm)
        shapes[arm] = [
            _workload_shape(d) for d in docs if d["kind"] in ("Deployment", "Service", "ServiceAccount")
        ]
    assert shapes["no-mesh"] == shapes["sidecar"] == shapes["ambient"] == shapes["waypoint"]


def test_arm_specific_parts() -> None:
    sidecar_pod = find(docs_of("sidecar"), "Deployment", "fortio-server")["spec"]["template"]["metadata"]
    assert sidecar_pod["annotations"]["proxy.istio.io/config"] == '{"concurrency": 2}'
    assert sidecar_pod["annotations"]["sidecar.istio.io/proxyCPULimit"] == "1"
    opted_out = find(docs_of("no-mesh"), "Deployment", "fortio-client")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert opted_out["sidecar.istio.io/inject"] == "false" and opted_out["istio.io/dataplane-mode"] == "none"
    gateway = find(docs_of("waypoint"), "Gateway")
    assert gateway["spec"]["gatewayClassName"] == "istio-waypoint"
    assert gateway["spec"]["listeners"][0] == {"name": "mesh", "port": 15008, "protocol": "HBONE"}
    assert not [d for d in docs_of("ambient") if d["kind"] == "Gateway"]


def test_placement_and_sizing() -> None:
    client = find(docs_of("ambient"), "Deployment", "fortio-client")["spec"]["template"]["spec"]
    term = client["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["meshproof.io/bench-role"] == "server"
    resources = client["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "1", "memory": "512Mi"}  # Guaranteed
    same = ArmSettings(run_id=RUN_ID, sizing=PodSizing(), placement="same-node")
    assert (
        "podAffinity"
        in find(docs_of("ambient", same), "Deployment", "fortio-client")["spec"]["template"]["spec"][
            "affinity"
        ]
    )
    anywhere = ArmSettings(run_id=RUN_ID, sizing=PodSizing(), placement="any", run_as_user=None)
    spec = find(docs_of("ambient", anywhere), "Deployment", "fortio-client")["spec"]["template"]["spec"]
    assert "affinity" not in spec and "securityContext" not in spec  # OpenShift assigns the UID


def test_deploy_waits_for_the_waypoint_and_both_rollouts() -> None:
    cluster = FakeCluster("waypoint")
    dep = deploy_arm(cluster, "waypoint", SETTINGS, timeout=60)
    assert ("condition", "Gateway", "waypoint", "Programmed") in cluster.waits
    assert ("rollout", "Deployment", "fortio-server") in cluster.waits and (
        "rollout",
        "Deployment",
        "fortio-client",
    ) in cluster.waits
    assert (dep.client_pod, dep.server_pod) == ("fortio-client-1", "fortio-server-1")
    assert dep.placement.same_node is False
    assert {d["kind"] for d in cluster.applied} >= {"Namespace", "Deployment", "Service", "Gateway"}


@pytest.mark.parametrize("arm", ["no-mesh", "sidecar", "ambient", "waypoint"])
def test_path_check_passes_for_each_arm_on_its_own_signs(arm: str) -> None:
    cluster = FakeCluster(arm)
    dep = deploy_arm(cluster, arm, SETTINGS, timeout=60)
    verdict = check_path(cluster, dep)
    assert verdict.ok, verdict.reason
    assert cluster.execs[-1][:2] == ["fortio", "curl"] and cluster.execs[-1][2].endswith("/debug")


def test_waiting_for_the_path_returns_the_last_failed_verdict() -> None:
    cluster = FakeCluster("sidecar")
    dep = deploy_arm(cluster, "sidecar", SETTINGS, timeout=60)
    cluster.debug = debug_body()  # the server never sees a client certificate
    verdict = wait_for_path(cluster, dep, timeout=0.5)
    assert not verdict and "X-Forwarded-Client-Cert" in verdict.reason


def test_path_check_negative_controls() -> None:
    sidecar_pod, plain_pod = pod("c", "n", sidecar=True), pod("s", "n")
    ambient_pod = pod("a", "n", ambient=True)
    bound = {"status": {"conditions": [{"type": "istio.io/WaypointBound", "status": "True"}]}}
    # traffic that crossed a sidecar is not a no-mesh baseline
    assert not verify_path(
        "no-mesh",
        client_pod=plain_pod,
        server_pod=plain_pod,
        server_service=None,
        debug_body=debug_body(XFCC),
    )
    # sidecars without the client certificate header: not proven mTLS
    assert not verify_path(
        "sidecar",
        client_pod=sidecar_pod,
        server_pod=sidecar_pod,
        server_service=None,
        debug_body=debug_body(),
    )
    # one side not redirected is not the ambient arm
    assert not verify_path(
        "ambient", client_pod=ambient_pod, server_pod=plain_pod, server_service=None, debug_body=""
    )
    # an ambient arm whose service is bound to a waypoint measures the waypoint arm instead, and vice versa
    assert not verify_path(
        "ambient", client_pod=ambient_pod, server_pod=ambient_pod, server_service=bound, debug_body=""
    )
    assert not verify_path(
        "waypoint", client_pod=ambient_pod, server_pod=ambient_pod, server_service=None, debug_body=""
    )
    assert client_cert_header(debug_body(XFCC)).startswith("By=spiffe://")  # type: ignore[union-attr]


def test_resource_targets_per_arm() -> None:
    cluster = FakeCluster("waypoint")
    dep = ArmDeployment(
        "waypoint", "ns", "fortio-client-1", "fortio-server-1", "worker-a", "worker-b", "cross-node"
    )
    components = {
        (t.component, t.pod, t.container) for t in resource_targets(cluster, dep, ztunnel_namespace="ztunnel")
    }
    assert ("ztunnel-client-node", "ztunnel-worker-a", "istio-proxy") in components
    assert ("ztunnel-server-node", "ztunnel-worker-b", "istio-proxy") in components
    assert ("waypoint", "waypoint-1", "istio-proxy") in components
    assert not any(c[1] == "ztunnel-worker-c" for c in components)  # a node off the path
    sidecar = ArmDeployment("sidecar", "ns", "fortio-client-1", "fortio-server-1", "a", "b", "any")
    names = {t.component for t in resource_targets(FakeCluster(), sidecar, ztunnel_namespace=None)}
    assert names == {"app-client", "app-server", "sidecar-client", "sidecar-server"}


def executor(cluster: FakeCluster, arm: str, **plan_changes: Any) -> ClusterExecutor:
    plan = BenchPlan.model_validate(
        {
            "name": "t",
            "duration_s": 30,
            "warmup_s": 5,
            "resources": {"interval_s": 0.01, "skip_start_s": 0, "skip_end_s": 0},
            "locust": {"enabled": True, "users": 4, "qps": 100, "workers": 2},
            **plan_changes,
        }
    )
    dep = ArmDeployment(arm, "ns", "fortio-client-1", "fortio-server-1", "worker-a", "worker-b", "cross-node")
    return ClusterExecutor(
        cluster=cluster, plan=plan, settings=SETTINGS, deployments={arm: dep}, ztunnel_namespace="ztunnel"
    )


def test_fortio_run_in_the_client_pod_with_resources_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster("sidecar")
    # PodMetrics timestamps of the fake are in 2030; widen the run window to cover them
    monkeypatch.setattr("meshproof.bench.cluster.time.time", iter([0.0, 4e9]).__next__)
    m = executor(cluster, "sidecar").measure_fortio(
        "sidecar", LoadPoint(qps=1000, connections=16, scenarios=("qps-sweep",)), 2, 7
    )
    run = m.run
    assert run.valid and run.arm == "sidecar" and run.repetition == 2 and run.order == 7
    assert run.placement.client_node == "worker-a" and run.scenarios == ["qps-sweep"]
    argv = cluster.execs[-1]
    assert argv[:2] == ["fortio", "load"] and argv[-1] == "http://fortio-server.ns:8080/echo"
    assert "-payload-size" in argv  # 1 KiB payload by default (perf-anchors §1.3 caveat)
    by_component = {u.component: u for u in m.resources}
    assert by_component["sidecar-server"].cpu_millicores == pytest.approx(210)
    assert by_component["sidecar-server"].memory_working_set_mib == pytest.approx(60)
    assert by_component["app-client"].cpu_millicores == pytest.approx(150)
    assert by_component["app-client"].memory_working_set_mib == pytest.approx(20)
    assert all(u.samples >= 2 for u in m.resources)


def test_locust_run_from_the_master_log_and_cleanup() -> None:
    cluster = FakeCluster("ambient")
    entry = {
        "name": "/echo",
        "method": "GET",
        "start_time": 1795675116.0,
        "last_request_timestamp": 1795675146.0,
        "num_requests": 3000,
        "num_none_requests": 0,
        "num_failures": 0,
        "total_response_time": 2400.0,
        "max_response_time": 9.1,
        "min_response_time": 0.3,
        "total_content_length": 0,
        "response_times": {"0.65": 1500, "0.8": 1400, "2.1": 100},
        "num_reqs_per_sec": {str(1795675116 + i): 100 for i in range(30)},
        "num_fail_per_sec": {},
    }
    cluster.master_log = "\n".join(
        [
            "MESHPROOF-LOCUST-BUCKETS fine",
            "MESHPROOF-LOCUST-EXIT 0",
            JSON_BEGIN,
            json.dumps([entry]),
            JSON_END,
        ]
    )
    m = executor(cluster, "ambient", resources={"enabled": False}).measure_locust("ambient", 1, 0)
    assert m.run.valid and m.run.tool == "locust" and m.run.requests == 3000
    workers = executor(cluster, "ambient").plan.locust.workers
    assert m.run.loadgen_cores == workers and m.run.requests_per_loadgen_core == m.run.actual_qps / workers
    assert ("condition", "Job", "locust-master", "Complete") in cluster.waits
    kinds = [d["kind"] for d in cluster.applied]
    assert kinds == ["ConfigMap", "Job", "Deployment"]  # the workers only once the master has an IP
    worker_cmd = cluster.applied[-1]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "--master-host 10.244.1.9" in worker_cmd
    assert sorted(k for k, _ in cluster.deleted) == sorted(kinds)  # everything the run created is removed


def test_locust_documents_ship_the_locustfile_and_keep_the_master_out_of_the_mesh() -> None:
    dep = ArmDeployment("sidecar", "ns", "c", "s", "a", "b", "any")
    load = LocustLoad(host=dep.server_host, path="/echo", qps=1000, users=32, duration_s=240, warmup_s=60)
    docs = locust_master_documents(dep, load, SETTINGS, workers=3)
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    assert "class EchoUser(FastHttpUser)" in find(docs, "ConfigMap")["data"]["locustfile.py"]
    master = find(docs, "Job")["spec"]["template"]
    assert master["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    script = master["spec"]["containers"][0]["command"][2]
    assert (
        "--master --expect-workers 3" in script
        and "--meshproof-user-rps 31.25" in script
        and "-t 301s" in script
    )
    (workers,) = locust_worker_documents(
        dep, load, SETTINGS, master_host="10.0.0.7", workers=3, worker_cpu="1", worker_memory="512Mi"
    )
    assert workers["kind"] == "Deployment" and workers["spec"]["replicas"] == 3
    worker_cmd = workers["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "--worker --master-host 10.0.0.7" in worker_cmd and "--meshproof-user-rps 31.25" in worker_cmd
    assert (
        workers["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"]
        == '{"concurrency": 2}'
    )


def test_quantities() -> None:
    assert cpu_millicores("150000000n") == pytest.approx(150)
    assert (
        cpu_millicores("250m") == 250
        and cpu_millicores("2") == 2000
        and cpu_millicores("12u") == pytest.approx(0.012)
    )
    assert memory_mib("20480Ki") == 20 and memory_mib("64Mi") == 64 and memory_mib("1048576") == 1
    assert memory_mib("1G") == pytest.approx(953.674, abs=1e-3)
    with pytest.raises(ValueError, match="not a CPU quantity"):
        cpu_millicores("lots")


def test_sampler_drops_repeated_windows_and_the_skipped_edges() -> None:
    class Source:
        name = "fake"

        def __init__(self) -> None:
            self.at = [100.0, 100.0, 115.0, 130.0, 145.0, 160.0]

        def sample(self, targets: Sequence[ContainerTarget]) -> dict:
            at = self.at.pop(0)
            from meshproof.bench.resources import Sample

            return {targets[0].key: Sample(at=at, cpu_millicores=at, memory_mib=10)}

    target = ContainerTarget("waypoint", "ns", "waypoint-1", "istio-proxy")
    sampler = ResourceSampler(Source(), [target], interval_s=1)
    for _ in range(6):
        sampler.sample_once()
    assert [s.at for s in sampler.samples[target.key]] == [100.0, 115.0, 130.0, 145.0, 160.0]
    (usage,) = sampler.usage(
        run_id="r", arm="waypoint", started=100, ended=160, skip_start_s=10, skip_end_s=20
    )
    assert usage.samples == 2 and usage.cpu_millicores == pytest.approx((115 + 130) / 2)


def test_metrics_api_source_reads_pod_metrics() -> None:
    source = MetricsApiSource(FakeCluster())
    found = source.sample([ContainerTarget("sidecar-server", "ns", "fortio-server-1", "istio-proxy")])
    sample = found[("ns", "fortio-server-1", "istio-proxy")]
    assert sample.cpu_millicores == 210 and sample.memory_mib == 60


def test_prometheus_source_queries_working_set_and_cpu_rate() -> None:
    urls: list[str] = []

    def fetch(url: str) -> str:
        urls.append(url)
        value = "0.21" if "cpu" in url else str(60 * 1024 * 1024)
        return json.dumps(
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [
                        {
                            "metric": {"pod": "fortio-server-1", "container": "istio-proxy"},
                            "value": [1795675116.5, value],
                        }
                    ],
                },
            }
        )

    source = PrometheusSource("http://127.0.0.1:9090", fetch=fetch)
    found = source.sample([ContainerTarget("sidecar-server", "ns", "fortio-server-1", "istio-proxy")])
    assert found[("ns", "fortio-server-1", "istio-proxy")].cpu_millicores == pytest.approx(210)
    assert found[("ns", "fortio-server-1", "istio-proxy")].memory_mib == pytest.approx(60)
    assert (
        "container_memory_working_set_bytes" in urls[1]
        and "rate%28container_cpu_usage_seconds_total" in urls[0]
    )
