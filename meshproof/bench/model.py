"""The benchmark result format: one versioned `benchmark.json` per run, shared by every tool and arm.

Latencies are milliseconds (floats), rates requests/s, CPU millicores, memory MiB. Every run keeps its
latency histogram, so statistics can resample requests even when there is only one repetition.
Invalid runs stay in the file with their reasons; analysis skips them, it never averages them in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meshproof import __version__

SCHEMA = "meshproof.io/benchmark"
SCHEMA_VERSION = 1
RESULTS_FILE = "benchmark.json"

Tool = Literal["fortio", "locust"]
# The four arms of perf-anchors §7.1, plus "local" for `meshproof bench local` runs.
ARM_NAMES = ("no-mesh", "sidecar", "ambient", "waypoint")
BASELINE_ARM = "no-mesh"
REPORTED_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


class ResultsError(Exception):
    """A results file that cannot be read: missing, not JSON, wrong schema or a newer version."""


def percentile_key(q: float) -> str:
    """`p50`, `p90`, `p99`, `p99.9`: the metric names used in tables and JSON keys."""
    return f"p{q:g}"


class Bucket(BaseModel):
    model_config = ConfigDict(frozen=True)

    start_ms: float
    end_ms: float
    count: int = Field(ge=0)


class Histogram(BaseModel):
    """Latency buckets (non-empty ones only, ascending).

    Percentiles interpolate linearly inside a bucket, the way fortio computes its own (output-formats
    §1.1), so a fortio histogram reproduces fortio's numbers."""

    model_config = ConfigDict(frozen=True)

    buckets: list[Bucket] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(b.count for b in self.buckets)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.array([b.start_ms for b in self.buckets], dtype=float)
        ends = np.array([b.end_ms for b in self.buckets], dtype=float)
        counts = np.array([b.count for b in self.buckets], dtype=np.int64)
        return starts, ends, counts

    def percentile(self, q: float) -> float:
        starts, ends, counts = self.arrays()
        if counts.size == 0:
            return float("nan")
        return float(interpolated_percentiles(starts, ends, counts[np.newaxis, :], q)[0])

    def bucket_width_at(self, q: float) -> float:
        """Width (ms) of the bucket percentile q falls in: inside it the value is interpolated, so a
        difference smaller than this is below what the histogram resolves."""
        starts, ends, counts = self.arrays()
        if counts.size == 0:
            return float("nan")
        cumulative = counts.cumsum()
        index = min(
            int(np.searchsorted(cumulative, cumulative[-1] * q / 100.0, side="left")), counts.size - 1
        )
        return float(ends[index] - starts[index])

    def mean(self) -> float:
        starts, ends, counts = self.arrays()
        total = counts.sum()
        return float(((starts + ends) / 2 * counts).sum() / total) if total else float("nan")


def interpolated_percentiles(
    starts: np.ndarray, ends: np.ndarray, counts: np.ndarray, q: float
) -> np.ndarray:
    """The q-th percentile (0-100) of each row of `counts` (shape R x K) over shared buckets.

    Vectorized so a bootstrap can evaluate thousands of resampled histograms at once.
    """
    counts = np.atleast_2d(counts)
    cumulative = counts.cumsum(axis=1)
    totals = cumulative[:, -1].astype(float)
    target = totals * q / 100.0
    # first bucket whose cumulative count reaches the target
    index = (cumulative < target[:, np.newaxis]).sum(axis=1)
    index = np.minimum(index, counts.shape[1] - 1)
    rows = np.arange(counts.shape[0])
    before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0)
    in_bucket = counts[rows, index]
    fraction = np.divide(
        target - before, in_bucket, out=np.zeros_like(target, dtype=float), where=in_bucket > 0
    )
    values = starts[index] + (ends[index] - starts[index]) * np.clip(fraction, 0.0, 1.0)
    return np.where(totals > 0, values, np.nan)


class LatencySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    # None when the run completed no request
    min_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    # keys are percentile_key() names; exact when computed from per-request data
    percentiles_ms: dict[str, float]


class Placement(BaseModel):
    """Where the load generator and the server ran (perf-anchors §7.3: placement changes results)."""

    model_config = ConfigDict(frozen=True)

    client_node: str | None = None
    server_node: str | None = None
    policy: str = "unspecified"  # cross-node | same-node | any | loopback

    @property
    def same_node(self) -> bool | None:
        if self.client_node is None or self.server_node is None:
            return None
        return self.client_node == self.server_node


class RunRecord(BaseModel):
    """One measured load run (warm-up runs are never recorded)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    tool: Tool
    arm: str
    scenarios: list[str] = Field(default_factory=list)
    repetition: int = Field(ge=1)
    order: int = Field(ge=0, description="position in the run sequence (arm order is randomized)")
    target: str
    requested_qps: float | None = Field(description="None = as fast as possible (max-throughput run)")
    connections: int = Field(ge=1)
    payload_bytes: int = 0
    requested_duration_s: float
    started_at: datetime
    actual_duration_s: float
    actual_qps: float
    requests: int
    errors: int
    return_codes: dict[str, int] = Field(default_factory=dict)
    socket_count: int | None = None
    latency: LatencySummary
    histogram: Histogram
    per_second_counts: list[int] | None = Field(
        default=None, description="requests completed in each whole second of the measured window"
    )
    valid: bool
    invalid_reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    raw_files: list[str] = Field(default_factory=list, description="relative to the results dir")
    tool_version: str = ""
    loadgen_cpu_s: float | None = Field(
        default=None,
        description="CPU seconds the load generator used (local runs; warm-up excluded for fortio)",
    )
    loadgen_cores: int | None = Field(
        default=None, description="cores the load generator was given (Locust worker processes)"
    )
    placement: Placement = Field(default_factory=Placement)
    labels: str = ""

    @property
    def requests_per_loadgen_core(self) -> float | None:
        """Achieved req/s per load-generator core (Locust: per worker process)."""
        return self.actual_qps / self.loadgen_cores if self.loadgen_cores else None

    @property
    def requests_per_cpu_second(self) -> float | None:
        """The harness's own cost: requests per CPU-second of the load generator (its per-core ceiling
        when it is the bottleneck)."""
        if not self.loadgen_cpu_s:
            return None
        return self.requests / self.loadgen_cpu_s

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def cell(self) -> CellKey:
        return CellKey(
            tool=self.tool,
            arm=self.arm,
            requested_qps=self.requested_qps,
            connections=self.connections,
            payload_bytes=self.payload_bytes,
        )


class CellKey(BaseModel):
    """What makes two runs comparable: same tool, arm, load point and payload (the URL is not part of it,
    so a baseline taken against one address compares with a run against another)."""

    model_config = ConfigDict(frozen=True)

    tool: Tool
    arm: str
    requested_qps: float | None
    connections: int
    payload_bytes: int = 0

    def point(self) -> str:
        qps = "max" if self.requested_qps is None else f"{self.requested_qps:g}"
        size = f" {self.payload_bytes}B" if self.payload_bytes else ""
        return f"{self.tool} qps={qps} c={self.connections}{size}"

    def label(self) -> str:
        return f"{self.arm} {self.point()}"

    def with_arm(self, arm: str) -> CellKey:
        return self.model_copy(update={"arm": arm})

    def sort_key(self) -> tuple[str, str, float, int, int]:
        arm_rank = str(ARM_NAMES.index(self.arm)) if self.arm in ARM_NAMES else self.arm
        qps = float("inf") if self.requested_qps is None else self.requested_qps
        return (self.tool, arm_rank, qps, self.connections, self.payload_bytes)


Component = Literal[
    "sidecar-client",
    "sidecar-server",
    "ztunnel-client-node",
    "ztunnel-server-node",
    "waypoint",
    "app-client",
    "app-server",
    "loadgen",
]


class ResourceUsage(BaseModel):
    """Mean CPU and working-set memory of one container during one run (perf-anchors §5)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    arm: str
    component: Component
    pod: str
    container: str
    node: str | None = None
    cpu_millicores: float
    memory_working_set_mib: float
    samples: int = Field(ge=1)
    source: str = "metrics.k8s.io"


class BenchmarkResults(BaseModel):
    """The whole `benchmark.json`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=SCHEMA, alias="schema")
    version: int = SCHEMA_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    meshproof_version: str = __version__
    kind: Literal["local", "cluster"]
    environment: dict[str, Any] = Field(default_factory=dict)
    plan: dict[str, Any] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)
    resources: list[ResourceUsage] = Field(default_factory=list)
    # the `scale` profile (meshproof.bench.scale): container samples and istiod push windows per (arm, N)
    scale_samples: list[dict[str, Any]] = Field(default_factory=list)
    scale_pushes: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def valid_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.valid]

    def cells(self) -> dict[CellKey, list[RunRecord]]:
        """All runs (valid or not) grouped by cell, in a stable order."""
        grouped: dict[CellKey, list[RunRecord]] = {}
        for run in self.runs:
            grouped.setdefault(run.cell(), []).append(run)
        return dict(sorted(grouped.items(), key=lambda item: item[0].sort_key()))

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / RESULTS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


def results_path(location: Path) -> Path:
    """Accept a results dir or a `benchmark.json` path."""
    return location / RESULTS_FILE if location.is_dir() else location


def load_results(location: Path) -> BenchmarkResults:
    path = results_path(location)
    if not path.is_file():
        raise ResultsError(f"no {RESULTS_FILE} at {path}: pass a results dir or a {RESULTS_FILE} file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ResultsError(f"{path} is not a meshproof benchmark file (schema must be {SCHEMA!r})")
    version = data.get("version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path} has benchmark schema version {version!r}; this meshproof reads up to {SCHEMA_VERSION}: "
            "upgrade meshproof"
        )
    try:
        return BenchmarkResults.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ResultsError(f"{path}: invalid field {where}: {first['msg']}") from None
