"""The `scale` profile's aggregation and rendering (the measurement itself needs a real cluster):
sidecars summed, ztunnel per node summed, waypoints added, istiod's push time from two scrapes, the table,
the cost-vs-N plot, the pod counts' source, and the idle-pod manifest."""

from __future__ import annotations

import pytest
import yaml
from fixtures_data.bench_runs import pod_metrics
from fixtures_data.shared_data import capture

from meshproof.bench.cluster import ArmSettings
from meshproof.bench.model import BenchmarkResults
from meshproof.bench.plan import PodSizing, load_plan
from meshproof.bench.scale import (
    PushWindow,
    ScaleCountsError,
    ScaleSample,
    aggregate,
    convergence_totals,
    cost_plot,
    markdown_table,
    scale_counts,
)
from meshproof.bench.scale_cluster import render_idle
from meshproof.reporting.bench import write_reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def samples(n: int) -> list[ScaleSample]:
    """Sidecars: 30 MiB each; ztunnel: 12 MiB + 0.05 per pod on each of 2 nodes; waypoint 60 MiB."""
    out = [
        ScaleSample(
            arm="sidecar", pods=n, component="sidecar", pod=f"idle-{i}", cpu_millicores=2, memory_mib=30
        )
        for i in range(n)
    ]
    for arm in ("ambient", "waypoint"):
        for node in ("n1", "n2"):
            out.append(
                ScaleSample(
                    arm=arm,
                    pods=n,
                    component="ztunnel",
                    pod=f"ztunnel-{node}",
                    node=node,
                    cpu_millicores=3,
                    memory_mib=12 + 0.05 * n / 2,
                )
            )
    out.append(
        ScaleSample(arm="waypoint", pods=n, component="waypoint", pod="wp", cpu_millicores=5, memory_mib=60)
    )
    for arm in ("sidecar", "ambient", "waypoint"):
        out.append(
            ScaleSample(
                arm=arm, pods=n, component="istiod", pod="istiod-0", cpu_millicores=20, memory_mib=100 + n
            )
        )
    return out


def windows(n: int) -> list[PushWindow]:
    return [
        PushWindow(
            arm=arm,
            pods=n,
            sum_before_s=1.0,
            count_before=10,
            sum_after_s=1.0 + 0.002 * n,
            count_after=10 + n,
        )
        for arm in ("sidecar", "ambient", "waypoint")
    ]


def test_aggregation_sums_each_modes_data_plane_and_istiod() -> None:
    points = {(p.arm, p.pods): p for p in aggregate(samples(10) + samples(100), windows(10) + windows(100))}
    sidecar = points[("sidecar", 100)]
    assert sidecar.dataplane_memory_mib == pytest.approx(3000) and sidecar.proxies == 100
    assert sidecar.memory_per_pod_mib == pytest.approx(30)
    ambient = points[("ambient", 100)]
    assert ambient.dataplane_memory_mib == pytest.approx(2 * (12 + 2.5)) and ambient.proxies == 2
    waypoint = points[("waypoint", 100)]
    assert waypoint.dataplane_memory_mib == pytest.approx(ambient.dataplane_memory_mib + 60)
    assert waypoint.proxies == 3 and waypoint.dataplane_cpu_m == pytest.approx(11)
    # istiod is not data plane: reported on its own
    assert sidecar.istiod_memory_mib == pytest.approx(200) and sidecar.istiod_cpu_m == pytest.approx(20)
    assert sidecar.push_ms == pytest.approx(2.0) and sidecar.pushes == 100
    assert [(p.arm, p.pods) for p in aggregate(samples(100) + samples(10))][:2] == [
        ("sidecar", 10),
        ("sidecar", 100),
    ]


def test_push_time_needs_pushes_and_survives_no_restart() -> None:
    none = PushWindow(arm="ambient", pods=10, sum_before_s=1, count_before=5, sum_after_s=1, count_after=5)
    assert none.mean_push_ms is None
    restarted = PushWindow(
        arm="ambient", pods=10, sum_before_s=9, count_before=50, sum_after_s=0.2, count_after=60
    )
    assert restarted.mean_push_ms is None  # istiod restarted in between: its counters went backwards


def test_convergence_totals_read_real_metrics_text_without_the_histogram_as_zero() -> None:
    # real ztunnel /metrics (no pilot_* series): parsed, and the absent histogram reads as no push
    text = capture("ztunnel-1.27.9-istiod", "metrics.txt").read_text(encoding="utf-8")
    assert convergence_totals(text) == (0.0, 0.0, None)


def test_table_plot_and_report_section() -> None:
    points = aggregate(samples(10) + samples(50) + samples(100), windows(10) + windows(100))
    table = markdown_table(points)
    assert "| sidecar | 100 | 200.0 | 3000.0 | 30.00 | 100 |" in table
    assert "| ambient | 50 |" in table and "n/a" in table  # no push window at N=50
    assert "istiod connected proxies" in table.splitlines()[0]
    seen = aggregate(samples(10), [windows(10)[0].model_copy(update={"connected_proxies": 12.0})])
    assert markdown_table(seen).splitlines()[2].endswith("| 12 |")  # pilot_xds is shown, not only stored
    png = cost_plot(points)
    assert png is not None and png.startswith(PNG_MAGIC) and len(png) > 10000
    assert cost_plot(aggregate(samples(10))) is None  # one N: no line to draw


def test_scale_results_land_in_the_benchmark_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    results = BenchmarkResults(
        kind="cluster",
        plan=load_plan("scale").model_dump(mode="json"),
        scale_samples=[s.model_dump(mode="json") for s in samples(10) + samples(50)],
        scale_pushes=[w.model_dump(mode="json") for w in windows(10)],
    )
    paths = write_reports(results, tmp_path)
    assert [p.name for p in paths.plots] == ["scale-cost.png"]
    md = paths.markdown.read_text(encoding="utf-8")
    assert "## Cost of the mesh at scale" in md and "| waypoint | 50 |" in md
    assert "<th>istiod push (ms, mean)</th>" in paths.html.read_text(encoding="utf-8")


def test_pod_counts_come_from_the_profile_on_kind_and_must_be_set_on_openshift() -> None:
    plan = load_plan("scale")
    assert plan.scale.enabled and scale_counts(plan.scale.pods, "kind", None) == [10, 50, 100]
    assert scale_counts(plan.scale.pods, "openshift", "1000, 100,500") == [100, 500, 1000]
    with pytest.raises(ScaleCountsError, match="sized for kind"):
        scale_counts(plan.scale.pods, "openshift", None)
    with pytest.raises(ScaleCountsError, match="comma-separated"):
        scale_counts(plan.scale.pods, "kind", "ten")


def test_bad_scale_pod_counts_stop_the_benchmark_at_startup() -> None:
    from meshproof.bench.settings import BenchSettingsError, bench_settings

    assert bench_settings({"MESHPROOF_BENCH_SCALE_PODS": "100,500"}).plan.name == "quick"
    with pytest.raises(BenchSettingsError) as err:
        bench_settings({"MESHPROOF_BENCH_SCALE_PODS": "100,lots"})
    assert err.value.problems == ["MESHPROOF_BENCH_SCALE_PODS: not comma-separated pod counts: '100,lots'"]


def test_idle_pods_are_enrolled_by_their_namespace_and_small() -> None:
    settings = ArmSettings(run_id="r1", sizing=PodSizing(), placement="any")
    docs = [d for d in yaml.safe_load_all(render_idle("sidecar", settings, 50)) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 50
    assert deployment["metadata"]["namespace"] == "mp-bench-r1-sidecar"
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/proxyMemory"] == "32Mi"
    assert template["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "5m", "memory": "16Mi"}
    assert any(d["kind"] == "Service" for d in docs)
    ambient = next(d for d in yaml.safe_load_all(render_idle("ambient", settings, 10)) if d)
    assert "annotations" not in ambient["spec"]["template"]["metadata"]  # no sidecar sizing outside sidecar


class ScaleFakeCluster:
    """Answers like meshproof.kube.Cluster for measure_scale: as many running idle pods as the last
    applied replicas, two ztunnels, a waypoint, istiod; PodMetrics in metrics-server's shape; istiod's
    port-forward reaches a loopback HTTP server."""

    def __init__(self, metrics_port: int) -> None:
        self.metrics_port = metrics_port
        self.replicas = 0
        self.calls: list[tuple[str, ...]] = []
        self.tick = 0

    @staticmethod
    def _pod(name: str, namespace: str, node: str = "n1") -> dict:
        return {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node},
            "status": {"phase": "Running"},
        }

    def apply(self, docs, *, test_id=None):  # type: ignore[no-untyped-def]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        self.replicas = deployment["spec"]["replicas"]
        self.calls.append(("apply", deployment["metadata"]["namespace"], str(self.replicas)))
        return list(docs)

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> dict:
        self.calls.append(("wait", name, namespace))
        return {}

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, **_kw: object
    ) -> None:
        self.calls.append(("delete", name, str(namespace)))
        self.replicas = 0

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict]:
        if label_selector == "app=idle":
            return [self._pod(f"idle-{i}", namespace) for i in range(self.replicas)]
        if label_selector == "app=istiod":
            return [self._pod("istiod-0", namespace)]
        if label_selector and "gateway-name=waypoint" in label_selector:
            return [self._pod("waypoint-0", namespace)]
        return []

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict]:
        return (
            [self._pod(f"ztunnel-{n}", "ztunnel", n) for n in ("n1", "n2")]
            if label_selector == "app=ztunnel"
            else []
        )

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        if kind != "PodMetrics":
            return None
        self.tick += 1
        container = "discovery" if name.startswith("istiod") else "istio-proxy"
        return pod_metrics(name, namespace, self.tick, {container: {"cpu": "4000000n", "memory": "30Mi"}})

    def port_forward(self, pod: str, namespace: str, port: int):  # type: ignore[no-untyped-def]
        from contextlib import nullcontext

        self.calls.append(("port-forward", pod, str(port)))
        return nullcontext(self.metrics_port)


def test_measure_scale_drives_each_arm_through_every_count_and_cleans_up() -> None:
    import http.server
    import threading

    from meshproof.bench.scale_cluster import ScaleTargets, measure_scale

    # a real Istio component's /metrics text (ztunnel's) served on loopback stands in for istiod's
    body = capture("ztunnel-1.27.9-istiod", "metrics.txt").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cluster = ScaleFakeCluster(server.server_address[1])
        settings = ArmSettings(run_id="r1", sizing=PodSizing(), placement="any")
        slept: list[float] = []
        samples, windows, notes = measure_scale(
            cluster,
            ["sidecar", "waypoint"],
            settings,
            [5, 2],
            targets=ScaleTargets(ztunnel_namespace="ztunnel"),
            settle_s=30,
            samples=2,
            interval_s=7,
            timeout_s=60,
            sleep=slept.append,
        )
    finally:
        server.shutdown()
        server.server_close()
    applies = [c for c in cluster.calls if c[0] == "apply"]
    assert applies == [
        ("apply", "mp-bench-r1-sidecar", "2"),
        ("apply", "mp-bench-r1-sidecar", "5"),
        ("apply", "mp-bench-r1-waypoint", "2"),
        ("apply", "mp-bench-r1-waypoint", "5"),
    ]
    assert ("delete", "idle", "mp-bench-r1-sidecar") in cluster.calls  # nothing left behind
    assert ("port-forward", "istiod-0", "15014") in cluster.calls
    assert slept.count(30) == 4 and slept.count(7) == 4  # settle per count; samples 7 s apart
    points = {(p.arm, p.pods): p for p in aggregate(samples, windows)}
    assert points[("sidecar", 5)].proxies == 5 and points[("sidecar", 5)].dataplane_memory_mib == 150
    assert points[("waypoint", 2)].proxies == 3  # two ztunnels and the waypoint
    assert points[("waypoint", 2)].istiod_memory_mib == 30
    # the scraped text has no pilot_proxy_convergence_time: a window with no push, and no made-up time
    assert len(windows) == 4 and all(w.mean_push_ms is None for w in windows)
    assert not notes
