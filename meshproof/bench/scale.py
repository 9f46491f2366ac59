"""The cost of the mesh at scale: N idle-but-enrolled pods per arm, and what the data plane and istiod
spend on them as N grows (the headline claim of ambient mode is a lower resource cost).

Per arm and N, one arm at a time (the others scaled to zero, so a shared ztunnel's growth belongs to the
arm that caused it):
- data plane: sidecar arm = every `istio-proxy` sidecar in the arm's namespace, summed; ambient arm =
  every ztunnel (one per node), summed; waypoint arm = ztunnels plus the waypoint pods;
- istiod: its containers' CPU and working set, and its push time: the mean of
  `pilot_proxy_convergence_time` ("delay in seconds between config change and a proxy receiving all
  required configuration", a histogram istiod serves on :15014/metrics) over the pushes made while the
  N pods came up (the delta of its _sum over the delta of its _count between two scrapes).

The aggregation and rendering here are pure and unit-tested; meshproof.bench.scale_cluster drives a
real cluster.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meshproof.evidence.prometheus import MetricSample, parse_exposition, select, total

ScaleComponent = Literal["sidecar", "ztunnel", "waypoint", "istiod"]
DATA_PLANE: dict[str, tuple[ScaleComponent, ...]] = {
    "no-mesh": (),
    "sidecar": ("sidecar",),
    "ambient": ("ztunnel",),
    "waypoint": ("ztunnel", "waypoint"),
}
CONVERGENCE = "pilot_proxy_convergence_time"
CONNECTED_PROXIES = "pilot_xds"


class ScaleCountsError(ValueError):
    """Pod counts that cannot be used; one line naming the setting."""


def scale_counts(profile_pods: Sequence[int], provider: str, env_value: str | None) -> list[int]:
    """The N to measure: the env override (comma-separated) when set; else the profile's, which are
    sized for kind, so on OpenShift the user must choose."""
    if env_value:
        try:
            counts = sorted({int(v) for v in env_value.split(",") if v.strip()})
        except ValueError:
            raise ScaleCountsError(f"not comma-separated pod counts: {env_value!r}") from None
        if not counts or counts[0] < 1:
            raise ScaleCountsError(f"pod counts must be >= 1: {env_value!r}")
        return counts
    if provider == "openshift":
        raise ScaleCountsError(
            "set the pod counts for this cluster (e.g. 100,500,1000); the profile's default is sized for kind"
        )
    return sorted(set(profile_pods))


class ScaleSample(BaseModel):
    """One container's mean CPU and working set at one (arm, N)."""

    model_config = ConfigDict(frozen=True)

    arm: str
    pods: int = Field(ge=0)
    component: ScaleComponent
    pod: str
    node: str | None = None
    cpu_millicores: float
    memory_mib: float


class PushWindow(BaseModel):
    """istiod's convergence histogram totals before and after the N pods came up."""

    model_config = ConfigDict(frozen=True)

    arm: str
    pods: int
    sum_before_s: float
    count_before: float
    sum_after_s: float
    count_after: float
    connected_proxies: float | None = None

    @property
    def pushes(self) -> float:
        return self.count_after - self.count_before

    @property
    def mean_push_ms(self) -> float | None:
        """Mean convergence time of the pushes in the window; None without a push (or after a restart
        of istiod, which resets its counters)."""
        if self.pushes <= 0 or self.sum_after_s < self.sum_before_s:
            return None
        return 1000 * (self.sum_after_s - self.sum_before_s) / self.pushes


def convergence_totals(metrics_text: str) -> tuple[float, float, float | None]:
    """(_sum seconds, _count, connected proxies) from istiod's /metrics text (0, 0 when absent)."""
    samples: list[MetricSample] = parse_exposition(metrics_text)
    connected = select(samples, CONNECTED_PROXIES)
    return (
        total(select(samples, f"{CONVERGENCE}_sum")),
        total(select(samples, f"{CONVERGENCE}_count")),
        total(connected) if connected else None,
    )


@dataclass(frozen=True)
class ScalePoint:
    """What one arm cost at N pods."""

    arm: str
    pods: int
    dataplane_cpu_m: float
    dataplane_memory_mib: float
    proxies: int  # data-plane containers summed (sidecars, ztunnels, waypoints)
    istiod_cpu_m: float | None
    istiod_memory_mib: float | None
    push_ms: float | None
    pushes: float | None
    connected_proxies: float | None = None  # istiod's pilot_xds after the N pods came up

    @property
    def memory_per_pod_mib(self) -> float | None:
        return self.dataplane_memory_mib / self.pods if self.pods else None


def aggregate(samples: Iterable[ScaleSample], pushes: Iterable[PushWindow] = ()) -> list[ScalePoint]:
    """Sum each arm's data-plane containers per N (sidecars summed, ztunnel per node summed, waypoints),
    and istiod's own use, in (arm, N) order."""
    grouped: dict[tuple[str, int], list[ScaleSample]] = {}
    for sample in samples:
        grouped.setdefault((sample.arm, sample.pods), []).append(sample)
    windows = {(w.arm, w.pods): w for w in pushes}
    points: list[ScalePoint] = []
    for (arm, pods), mine in sorted(grouped.items(), key=lambda kv: (_arm_rank(kv[0][0]), kv[0][1])):
        plane = [s for s in mine if s.component in DATA_PLANE.get(arm, ())]
        istiod = [s for s in mine if s.component == "istiod"]
        window = windows.get((arm, pods))
        points.append(
            ScalePoint(
                arm=arm,
                pods=pods,
                dataplane_cpu_m=sum(s.cpu_millicores for s in plane),
                dataplane_memory_mib=sum(s.memory_mib for s in plane),
                proxies=len(plane),
                istiod_cpu_m=sum(s.cpu_millicores for s in istiod) if istiod else None,
                istiod_memory_mib=sum(s.memory_mib for s in istiod) if istiod else None,
                push_ms=window.mean_push_ms if window else None,
                pushes=window.pushes if window else None,
                connected_proxies=window.connected_proxies if window else None,
            )
        )
    return points


def points_of(samples: Iterable[dict[str, object]], pushes: Iterable[dict[str, object]]) -> list[ScalePoint]:
    """aggregate() over the dicts a benchmark.json keeps."""
    return aggregate(
        (ScaleSample.model_validate(s) for s in samples), (PushWindow.model_validate(w) for w in pushes)
    )


def _arm_rank(arm: str) -> int:
    order = list(DATA_PLANE)
    return order.index(arm) if arm in order else len(order)


TABLE_HEADERS = (
    "arm",
    "pods",
    "data-plane mCPU",
    "data-plane MiB",
    "MiB per pod",
    "proxies",
    "istiod mCPU",
    "istiod MiB",
    "istiod push (ms, mean)",
    "pushes",
    "istiod connected proxies",
)


def table_row(p: ScalePoint) -> list[str]:
    return [
        p.arm,
        str(p.pods),
        f"{p.dataplane_cpu_m:.1f}",
        f"{p.dataplane_memory_mib:.1f}",
        _num(p.memory_per_pod_mib, 2),
        str(p.proxies),
        _num(p.istiod_cpu_m, 1),
        _num(p.istiod_memory_mib, 1),
        _num(p.push_ms, 1),
        _num(p.pushes, 0),
        _num(p.connected_proxies, 0),
    ]


def markdown_table(points: Sequence[ScalePoint]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "| --- |" + " ---: |" * (len(TABLE_HEADERS) - 1)]
    lines += ["| " + " | ".join(table_row(p)) + " |" for p in points]
    return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def cost_plot(points: Sequence[ScalePoint]) -> bytes | None:
    """Data-plane memory and CPU, istiod memory and push time against N, one line per mode."""
    arms = sorted({p.arm for p in points if p.arm != "no-mesh"}, key=_arm_rank)
    if not arms or len({p.pods for p in points}) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from meshproof.reporting.bench_plots import colour

    panels: list[tuple[str, Callable[[ScalePoint], float | None]]] = [
        ("data-plane memory (MiB)", lambda p: p.dataplane_memory_mib),
        ("data-plane CPU (mCPU)", lambda p: p.dataplane_cpu_m),
        ("istiod memory (MiB)", lambda p: p.istiod_memory_mib),
        ("istiod push time (ms, mean)", lambda p: p.push_ms),
    ]
    counts = sorted({p.pods for p in points})
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for ax, (title, value) in zip(axes, panels, strict=True):
        for arm in arms:
            mine = sorted((p for p in points if p.arm == arm), key=lambda p: p.pods)
            xs = [p.pods for p in mine if value(p) is not None]
            ys = [value(p) for p in mine if value(p) is not None]
            if xs:
                ax.plot(xs, ys, marker="o", color=colour(arm), label=arm)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("idle enrolled pods per arm (N)")
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Cost of the mesh vs N (one arm deployed at a time)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
