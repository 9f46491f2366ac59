"""What a cluster benchmark runs: arms, load points (sweeps), durations, repetitions and their order.

A plan comes from a load profile YAML in load/profiles/ (standard.yaml is perf-anchors §7's method;
quick.yaml a smaller one for trying the harness). Load points from several sweeps are merged, so the
canonical point (1000 qps x 16 connections) that is in both sweeps is measured once and tagged twice.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meshproof.bench.model import ARM_NAMES
from meshproof.bench.validity import ValidityLimits

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO_ROOT / "load" / "profiles"

Arm = Literal["no-mesh", "sidecar", "ambient", "waypoint"]
PlacementPolicy = Literal["cross-node", "same-node", "any"]


class PlanError(Exception):
    """A load profile that cannot be used; the message names the file and the field."""


class ConnectionSweep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    qps: float = Field(gt=0)
    connections: list[int] = Field(min_length=1)


class QpsSweep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    connections: int = Field(ge=1)
    qps: list[float] = Field(min_length=1)


class MaxThroughput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    connections: int = Field(ge=1)


class FortioSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    resolution_s: float = Field(default=0.00001, gt=0)
    connection_sweep: ConnectionSweep | None = None
    qps_sweep: QpsSweep | None = None
    max_throughput: MaxThroughput | None = None


class LocustSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    workers: int = Field(default=2, ge=1)
    users: int = Field(default=32, ge=1)
    qps: float | None = Field(default=None, description="total paced rate; null = unpaced (throughput)")
    worker_cpu: str = "1"
    worker_memory: str = "512Mi"


class ResourceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    source: Literal["metrics-api", "prometheus"] = "metrics-api"
    prometheus_url: str | None = None
    interval_s: float = Field(default=15.0, gt=0)
    # istio/tools skips 62 s at the start and 30 s at the end of a run (perf-anchors §1.4)
    skip_start_s: float = Field(default=62.0, ge=0)
    skip_end_s: float = Field(default=30.0, ge=0)


class ScaleSettings(BaseModel):
    """The `scale` profile: N idle-but-enrolled pods per arm, one arm at a time (meshproof.bench.scale)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = False
    # the default fits kind; on OpenShift the user sets it (MESHPROOF_BENCH_SCALE_PODS)
    pods: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    settle_s: float = Field(default=60.0, ge=0)
    samples: int = Field(default=3, ge=1)
    interval_s: float = Field(default=15.0, ge=0)

    @field_validator("pods")
    @classmethod
    def _positive(cls, pods: list[int]) -> list[int]:
        if any(n < 1 for n in pods):
            raise ValueError("pod counts must be >= 1")
        return sorted(set(pods))


class PodSizing(BaseModel):
    """Fixed sizes for app containers and proxies (perf-anchors §7.4); integer CPUs make the pods
    Guaranteed so a static CPU manager can pin them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    app_cpu: str = "1"
    app_memory: str = "512Mi"
    proxy_cpu: str = "1"
    proxy_memory: str = "512Mi"
    proxy_concurrency: int = Field(default=2, ge=1)


class LoadPoint(BaseModel):
    model_config = ConfigDict(frozen=True)
    qps: float | None
    connections: int
    scenarios: tuple[str, ...]

    def label(self) -> str:
        return f"qps={'max' if self.qps is None else f'{self.qps:g}'} c={self.connections}"


class BenchPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    arms: list[Arm] = Field(default_factory=lambda: list(ARM_NAMES))  # type: ignore[arg-type]
    repetitions: int = Field(default=5, ge=1)
    seed: int = 1
    warmup_s: float = Field(default=60.0, ge=0)
    duration_s: float = Field(default=240.0, gt=0)
    pause_s: float = Field(default=60.0, ge=0)
    payload_bytes: int = Field(default=1024, ge=0)
    placement: PlacementPolicy = "cross-node"
    redeploy_each_repetition: bool = False
    fortio: FortioSettings = Field(default_factory=FortioSettings)
    locust: LocustSettings = Field(default_factory=lambda: LocustSettings(enabled=False))
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    sizing: PodSizing = Field(default_factory=PodSizing)
    validity: ValidityLimits = Field(default_factory=ValidityLimits)

    @field_validator("arms")
    @classmethod
    def _arms_unique(cls, arms: list[str]) -> list[str]:
        if len(set(arms)) != len(arms):
            raise ValueError("arms must not repeat")
        return arms

    def fortio_points(self) -> list[LoadPoint]:
        """Every fortio load point once, tagged with the sweeps it belongs to (stable order)."""
        tagged: dict[tuple[float | None, int], list[str]] = {}
        settings = self.fortio
        if settings.connection_sweep:
            for c in settings.connection_sweep.connections:
                tagged.setdefault((settings.connection_sweep.qps, c), []).append("connection-sweep")
        if settings.qps_sweep:
            for q in settings.qps_sweep.qps:
                tagged.setdefault((q, settings.qps_sweep.connections), []).append("qps-sweep")
        if settings.max_throughput:
            tagged.setdefault((None, settings.max_throughput.connections), []).append("max-throughput")
        return [LoadPoint(qps=q, connections=c, scenarios=tuple(s)) for (q, c), s in tagged.items()]

    def runs_per_arm(self) -> int:
        return len(self.fortio_points()) * int(self.fortio.enabled) + int(self.locust.enabled)

    def estimated_seconds(self) -> float:
        per_run = self.duration_s + self.pause_s
        # one warm-up per arm per repetition per point (perf-anchors §5: per connection count)
        return self.repetitions * len(self.arms) * self.runs_per_arm() * (per_run + self.warmup_s)


def arm_order(arms: list[str], repetition: int, seed: int) -> list[str]:
    """The arms in a random order per repetition (perf-anchors §7.8), reproducible from the seed."""
    shuffled = list(arms)
    random.Random(f"{seed}:{repetition}").shuffle(shuffled)
    return shuffled


def load_plan(name_or_path: str) -> BenchPlan:
    """A profile by name (load/profiles/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise PlanError(f"no load profile {name_or_path!r} (known: {known}, or a path to a YAML file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    try:
        return BenchPlan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"{path}: {where}: {first['msg']}") from None
