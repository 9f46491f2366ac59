"""The `scale` profile on a real cluster: N idle-but-enrolled pods per arm, one arm at a time, and what
the data plane and istiod spend on them (meshproof.bench.scale aggregates and renders).

For each arm, for each N in ascending order: scrape istiod's /metrics, scale the arm's `idle` Deployment
to N (manifests/bench/idle.yaml.j2), wait for the rollout, let it settle, scrape istiod again, and
sample the data-plane and istiod containers from the metrics API `samples` times. The arm's idle pods are
deleted before the next arm, so a shared ztunnel's growth belongs to the arm that caused it.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meshproof.bench.cluster import (
    ARM_CLASSES,
    ArmSettings,
    BenchCluster,
    _env,
    arm_namespace,
    render_documents,
)
from meshproof.bench.resources import MetricsApiSource
from meshproof.bench.scale import PushWindow, ScaleComponent, ScaleSample, convergence_totals
from meshproof.workloads import pod_labels

ISTIOD_METRICS_PORT = 15014
# an idle pod's own requests, and its sidecar's: 100 of them must fit on a kind node
IDLE_CPU = "5m"
IDLE_MEMORY = "16Mi"
IDLE_SIDECAR = {"sidecar.istio.io/proxyCPU": "10m", "sidecar.istio.io/proxyMemory": "32Mi"}


@dataclass(frozen=True)
class ScaleTargets:
    """Where the shared mesh components run."""

    istiod_namespace: str = "istio-system"
    istiod_selector: str = "app=istiod"
    ztunnel_namespace: str | None = None  # None: every namespace
    ztunnel_selector: str = "app=ztunnel"


def render_idle(arm: str, settings: ArmSettings, replicas: int) -> str:
    return (
        _env()
        .get_template("idle.yaml.j2")
        .render(
            arm=arm,
            namespace=arm_namespace(settings.run_id, arm),
            replicas=replicas,
            pod_labels=pod_labels(ARM_CLASSES[arm]),
            pod_annotations=IDLE_SIDECAR if arm == "sidecar" else {},
            run_as_user=settings.run_as_user,
            fortio_image=settings.fortio_image,
            cpu=IDLE_CPU,
            memory=IDLE_MEMORY,
        )
    )


def scrape_istiod(cluster: Any, pod: str, namespace: str, *, timeout_s: float = 10.0) -> str:
    """istiod's /metrics through a port-forward (its image has no shell or curl)."""
    with cluster.port_forward(pod, namespace, ISTIOD_METRICS_PORT) as local_port:
        url = f"http://127.0.0.1:{local_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return str(response.read().decode("utf-8", errors="replace"))


def _istiod_pod(cluster: BenchCluster, targets: ScaleTargets) -> dict[str, Any]:
    pods = [p for p in cluster.pods(targets.istiod_namespace, targets.istiod_selector) if _running(p)]
    if not pods:
        raise RuntimeError(f"no running istiod ({targets.istiod_selector}) in {targets.istiod_namespace}")
    return pods[0]


def _running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not (pod.get("metadata") or {}).get(
        "deletionTimestamp"
    )


def _containers(
    cluster: BenchCluster, arm: str, namespace: str, targets: ScaleTargets
) -> list[tuple[ScaleComponent, str, str, str, str | None]]:
    """(component, namespace, pod, container, node) of every container the arm's cost sums over."""
    found: list[tuple[ScaleComponent, str, str, str, str | None]] = []

    def add(component: ScaleComponent, pods: Sequence[dict[str, Any]], container: str) -> None:
        for pod in pods:
            if _running(pod):
                meta = pod["metadata"]
                found.append(
                    (component, meta["namespace"], meta["name"], container, pod["spec"].get("nodeName"))
                )

    if arm == "sidecar":
        add("sidecar", cluster.pods(namespace, "app=idle"), "istio-proxy")
    if arm in ("ambient", "waypoint"):
        add(
            "ztunnel",
            cluster.list("v1", "Pod", targets.ztunnel_namespace, label_selector=targets.ztunnel_selector),
            "istio-proxy",
        )
    if arm == "waypoint":
        add(
            "waypoint",
            cluster.pods(namespace, "gateway.networking.k8s.io/gateway-name=waypoint"),
            "istio-proxy",
        )
    add("istiod", cluster.pods(targets.istiod_namespace, targets.istiod_selector), "discovery")
    return found


def measure_scale(
    cluster: Any,
    arms: Sequence[str],
    settings: ArmSettings,
    counts: Sequence[int],
    *,
    targets: ScaleTargets,
    settle_s: float,
    samples: int,
    interval_s: float,
    timeout_s: float,
    progress: Callable[[str], None] = lambda _m: None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[ScaleSample], list[PushWindow], list[str]]:
    """Every (arm, N): container samples, istiod's push window, and notes for what could not be read."""
    source = MetricsApiSource(cluster)
    out: list[ScaleSample] = []
    windows: list[PushWindow] = []
    notes: list[str] = []
    for arm in arms:
        namespace = arm_namespace(settings.run_id, arm)
        try:
            for n in sorted(counts):
                progress(f"scale {arm}: {n} idle pods")
                istiod = _istiod_pod(cluster, targets)["metadata"]["name"]
                before = _scrape(cluster, istiod, targets, notes)
                cluster.apply(render_documents(render_idle(arm, settings, n)))
                cluster.wait_rollout("Deployment", "idle", namespace, timeout=timeout_s)
                sleep(settle_s)
                after = _scrape(cluster, istiod, targets, notes)
                if before is not None and after is not None:
                    (sb, cb, _), (sa, ca, connected) = convergence_totals(before), convergence_totals(after)
                    windows.append(
                        PushWindow(
                            arm=arm,
                            pods=n,
                            sum_before_s=sb,
                            count_before=cb,
                            sum_after_s=sa,
                            count_after=ca,
                            connected_proxies=connected,
                        )
                    )
                out.extend(
                    _sample(source, cluster, arm, n, namespace, targets, samples, interval_s, sleep, notes)
                )
        finally:
            cluster.delete("apps/v1", "Deployment", "idle", namespace, wait=True, timeout=timeout_s)
    return out, windows, notes


def _scrape(cluster: Any, pod: str, targets: ScaleTargets, notes: list[str]) -> str | None:
    try:
        return scrape_istiod(cluster, pod, targets.istiod_namespace)
    except OSError as exc:
        notes.append(f"istiod metrics not read ({exc}): no push time")
        return None


def _sample(
    source: MetricsApiSource,
    cluster: BenchCluster,
    arm: str,
    n: int,
    namespace: str,
    targets: ScaleTargets,
    samples: int,
    interval_s: float,
    sleep: Callable[[float], None],
    notes: list[str],
) -> list[ScaleSample]:
    """The mean of `samples` metrics-API readings (distinct timestamps only) of each container."""
    from meshproof.bench.resources import ContainerTarget

    containers = _containers(cluster, arm, namespace, targets)
    by_key = {(ns, pod, c): (component, node) for component, ns, pod, c, node in containers}
    readings: dict[tuple[str, str, str], dict[float, tuple[float, float]]] = {}
    probe = [ContainerTarget("loadgen", ns, pod, c, node) for _, ns, pod, c, node in containers]
    for i in range(samples):
        for key, sample in source.sample(probe).items():
            if key in by_key:
                readings.setdefault(key, {})[sample.at] = (sample.cpu_millicores, sample.memory_mib)
        if i + 1 < samples:
            sleep(interval_s)
    missing = [f"{ns}/{pod}" for (ns, pod, _c) in by_key if (ns, pod, _c) not in readings]
    if missing:
        notes.append(f"scale {arm} N={n}: no metrics for {', '.join(sorted(missing)[:5])}")
    out: list[ScaleSample] = []
    for key, values in readings.items():
        component, node = by_key[key]
        cpu = sum(v[0] for v in values.values()) / len(values)
        memory = sum(v[1] for v in values.values()) / len(values)
        out.append(
            ScaleSample(
                arm=arm,
                pods=n,
                component=component,
                pod=key[1],
                node=node,
                cpu_millicores=cpu,
                memory_mib=memory,
            )
        )
    return out
