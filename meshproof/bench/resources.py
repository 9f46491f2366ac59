"""Proxy CPU and working-set memory sampled while a load run is going (perf-anchors §5).

Two sources:
- the metrics API (`metrics.k8s.io/v1beta1` PodMetrics, served by metrics-server): CPU is a rate over
  the server's window, memory is the working set; resolution is 10-15 s, so only distinct samples
  (by their timestamp) count;
- Prometheus (cAdvisor series): `rate(container_cpu_usage_seconds_total[1m])` and
  `container_memory_working_set_bytes` (not `_usage_bytes`, which includes page cache).
Samples from the first `skip_start_s` and last `skip_end_s` of the run are dropped (istio/tools' window).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshproof.bench.model import Component, ResourceUsage
from meshproof.kube_api import ObjectGetter

METRICS_API = "metrics.k8s.io/v1beta1"
_CPU = re.compile(r"^([0-9.]+)([numk]?)$")
_MEM = re.compile(r"^([0-9.]+)([KMGTE]i?|[kmgte])?$")
_MEM_FACTORS = {
    None: 1,
    "": 1,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "E": 1e18,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Ei": 1024**6,
}


def cpu_millicores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("250m", "1", "123456n", "12u") in millicores."""
    match = _CPU.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    value, suffix = float(match.group(1)), match.group(2)
    scale = {"n": 1e-6, "u": 1e-3, "m": 1.0, "": 1000.0, "k": 1e6}[suffix]
    return value * scale


def memory_mib(quantity: str) -> float:
    """A Kubernetes memory quantity ("12345Ki", "64Mi", "1G", "1048576") in MiB."""
    match = _MEM.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _MEM_FACTORS[match.group(2)] / 1024**2


@dataclass(frozen=True)
class ContainerTarget:
    component: Component
    namespace: str
    pod: str
    container: str
    node: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.pod, self.container)


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the epoch (the source's own timestamp when it has one)
    cpu_millicores: float
    memory_mib: float


class ResourceSource(Protocol):
    name: str

    def sample(self, targets: Sequence[ContainerTarget]) -> dict[tuple[str, str, str], Sample]: ...


def _timestamp(text: str | None) -> float:
    if not text:
        return time.time()
    from datetime import datetime

    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


class MetricsApiSource:
    """PodMetrics through the cluster client (`Cluster.get`)."""

    name = "metrics.k8s.io"

    def __init__(self, cluster: ObjectGetter) -> None:
        self.cluster = cluster

    def sample(self, targets: Sequence[ContainerTarget]) -> dict[tuple[str, str, str], Sample]:
        found: dict[tuple[str, str, str], Sample] = {}
        for namespace, pod in sorted({(t.namespace, t.pod) for t in targets}):
            metrics = self.cluster.get(METRICS_API, "PodMetrics", pod, namespace)
            if not metrics:
                continue
            at = _timestamp(metrics.get("timestamp"))
            for container in metrics.get("containers") or []:
                usage = container.get("usage") or {}
                if "cpu" in usage and "memory" in usage:
                    found[(namespace, pod, str(container.get("name")))] = Sample(
                        at=at,
                        cpu_millicores=cpu_millicores(usage["cpu"]),
                        memory_mib=memory_mib(usage["memory"]),
                    )
        return found


class PrometheusSource:
    """cAdvisor series from a Prometheus HTTP API (e.g. through a port-forward)."""

    name = "prometheus"

    def __init__(
        self, base_url: str, *, fetch: Callable[[str], str] | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._fetch = fetch or self._http_get

    def _http_get(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=self.timeout) as response:
            return str(response.read().decode("utf-8"))

    @staticmethod
    def queries(namespace: str, pods: Sequence[str]) -> tuple[str, str]:
        pod_regex = "|".join(re.escape(p) for p in pods)
        selector = f'namespace="{namespace}",pod=~"{pod_regex}",container!="",container!="POD"'
        cpu = f"sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{selector}}}[1m]))"
        mem = f"sum by (pod, container) (container_memory_working_set_bytes{{{selector}}})"
        return cpu, mem

    def _query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        body = json.loads(self._fetch(url))
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus query failed: {body.get('error', body.get('status'))}")
        return list(body.get("data", {}).get("result") or [])

    def sample(self, targets: Sequence[ContainerTarget]) -> dict[tuple[str, str, str], Sample]:
        found: dict[tuple[str, str, str], Sample] = {}
        by_ns: dict[str, list[str]] = {}
        for t in targets:
            by_ns.setdefault(t.namespace, []).append(t.pod)
        for namespace, pods in by_ns.items():
            cpu_q, mem_q = self.queries(namespace, sorted(set(pods)))
            cpu = {
                (r["metric"].get("pod"), r["metric"].get("container")): r["value"] for r in self._query(cpu_q)
            }
            mem = {
                (r["metric"].get("pod"), r["metric"].get("container")): r["value"] for r in self._query(mem_q)
            }
            for key, (at, value) in cpu.items():
                if key in mem:
                    found[(namespace, str(key[0]), str(key[1]))] = Sample(
                        at=float(at),
                        cpu_millicores=float(value) * 1000.0,
                        memory_mib=float(mem[key][1]) / 1024**2,
                    )
        return found


@dataclass
class ResourceSampler:
    """Samples the targets every `interval_s` in a background thread while a run is going."""

    source: ResourceSource
    targets: Sequence[ContainerTarget]
    interval_s: float = 15.0
    samples: dict[tuple[str, str, str], list[Sample]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            self.sample_once()
            if self._stop.wait(self.interval_s):
                return

    def sample_once(self) -> None:
        try:
            found = self.source.sample(self.targets)
        except Exception as exc:  # a failed scrape must not abort the load run; it is reported
            self.errors.append(f"{self.source.name}: {exc}")
            return
        for key, sample in found.items():
            seen = self.samples.setdefault(key, [])
            if not seen or seen[-1].at != sample.at:  # metrics-server repeats a value until its next window
                seen.append(sample)

    def __enter__(self) -> ResourceSampler:
        self._thread = threading.Thread(target=self._loop, name="meshproof-resource-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 30)
        self.sample_once()  # the window that closed with the run

    def usage(
        self, *, run_id: str, arm: str, started: float, ended: float, skip_start_s: float, skip_end_s: float
    ) -> list[ResourceUsage]:
        """Mean per target over the samples inside [started + skip_start, ended - skip_end]."""
        low, high = started + skip_start_s, ended - skip_end_s
        usages: list[ResourceUsage] = []
        for target in self.targets:
            inside = [s for s in self.samples.get(target.key, []) if low <= s.at <= high]
            if not inside:
                continue
            usages.append(
                ResourceUsage(
                    run_id=run_id,
                    arm=arm,
                    component=target.component,
                    pod=target.pod,
                    container=target.container,
                    node=target.node,
                    cpu_millicores=sum(s.cpu_millicores for s in inside) / len(inside),
                    memory_working_set_mib=sum(s.memory_mib for s in inside) / len(inside),
                    samples=len(inside),
                    source=self.source.name,
                )
            )
        return usages
