"""fortio: build `fortio load` command lines, run them (locally or in a client pod), parse the JSON.

Method (perf-anchors §3, §7.5): fixed QPS with `-uniform -nocatchup`, so a late call is skipped instead
of bursting, and achieved QPS below the target shows that the system could not keep up (fortio does not
correct coordinated omission; the ActualQPS guard in meshproof.bench.validity is what catches it).
JSON goes to stdout with `-json -`; every human line and JSON log line goes to stderr (output-formats §1.2).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from meshproof.bench.model import (
    REPORTED_PERCENTILES,
    Bucket,
    Histogram,
    LatencySummary,
    Placement,
    RunRecord,
    percentile_key,
)
from meshproof.bench.proc import run_child
from meshproof.bench.validity import ValidityLimits, assess
from meshproof.kube_api import PodExecutor
from meshproof.workloads import FORTIO_IMAGE as WORKLOAD_FORTIO_IMAGE

# One fortio pin for the whole project (meshproof.tools.FORTIO_VERSION): the CLI meshproof downloads and
# the image the pods run. CI builds an older fortio with `go install` (.ci/install-fortio says why); the
# JSON result struct is byte-identical from v1.60.0 to v1.75.2 (output-formats §1.1), so parsing holds.
FORTIO_IMAGE = WORKLOAD_FORTIO_IMAGE
# 10 µs lowest bucket: about 1/10 of a ~0.1-1 ms loopback or pod-to-pod latency (perf-anchors §3, §7.5).
DEFAULT_RESOLUTION_S = 0.00001
FALLING_BEHIND = re.compile(r"WARNING ([0-9.]+)% of sleep were falling behind")


class FortioMissing(Exception):
    """fortio is not installed where meshproof looks for it."""


class FortioFailed(Exception):
    """`fortio load` exited without a JSON result (e.g. its warm-up request failed, output-formats §1.2)."""


@dataclass(frozen=True)
class FortioLoad:
    """One `fortio load` invocation."""

    url: str
    qps: float | None  # None = max speed (`-qps 0`)
    connections: int
    duration_s: float
    uniform: bool = True
    nocatchup: bool = True
    payload_size: int = 0  # > 0 sends that many random bytes (and switches to POST)
    resolution_s: float = DEFAULT_RESOLUTION_S
    percentiles: tuple[float, ...] = REPORTED_PERCENTILES
    keepalive: bool = True
    labels: str = ""
    timeout_s: float = 3.0
    allow_initial_errors: bool = False
    extra_args: tuple[str, ...] = ()

    def args(self, binary: str = "fortio") -> list[str]:
        """The argv, ending in the URL. `-json -` puts the result on stdout."""
        argv = [
            binary,
            "load",
            "-qps",
            "0" if self.qps is None else f"{self.qps:g}",
            "-c",
            str(self.connections),
            "-t",
            f"{self.duration_s:g}s",
            f"-uniform={str(self.uniform).lower()}",
            f"-nocatchup={str(self.nocatchup).lower()}",
            f"-keepalive={str(self.keepalive).lower()}",
            "-r",
            f"{self.resolution_s:g}",
            "-p",
            ",".join(f"{q:g}" for q in self.percentiles),
            "-timeout",
            f"{self.timeout_s:g}s",
            "-json",
            "-",
        ]
        if self.payload_size > 0:
            argv += ["-payload-size", str(self.payload_size)]
        if self.labels:
            argv += ["-labels", self.labels]
        if self.allow_initial_errors:
            argv.append("-allow-initial-errors")
        argv += list(self.extra_args)
        argv.append(self.url)
        return argv


@dataclass(frozen=True)
class FortioResult:
    """The parts of fortio's JSON result meshproof uses (output-formats §1.1), latencies in ms."""

    requested_qps: float | None
    actual_qps: float
    actual_duration_s: float
    num_threads: int
    version: str
    start_time: datetime
    count: int
    min_ms: float
    max_ms: float
    mean_ms: float
    percentiles_ms: dict[str, float]
    histogram: Histogram
    return_codes: dict[str, int]
    socket_count: int | None
    url: str
    labels: str
    falling_behind_pct: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok_requests(self) -> int:
        # fortio counts 2xx and 418 as OK (codeIsOK, output-formats §1.2)
        return sum(n for code, n in self.return_codes.items() if code.isdigit() and _ok(int(code)))

    @property
    def errors(self) -> int:
        return self.count - self.ok_requests


def _ok(code: int) -> bool:
    return 200 <= code < 300 or code == 418


def parse_fortio_json(text: str) -> FortioResult:
    """Parse `fortio load -json -` output. Raises FortioFailed on an error reply or a malformed body."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FortioFailed(f"fortio printed no JSON result ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict):
        raise FortioFailed("fortio JSON result is not an object")
    if data.get("error"):
        raise FortioFailed(f"fortio reported an error: {data.get('message', '')}")
    try:
        hist = data["DurationHistogram"]
        requested = str(data["RequestedQPS"])
        percentiles = {
            percentile_key(float(p["Percentile"])): float(p["Value"]) * 1000.0
            for p in hist.get("Percentiles") or []
        }
        buckets = [
            Bucket(
                start_ms=float(b["Start"]) * 1000.0, end_ms=float(b["End"]) * 1000.0, count=int(b["Count"])
            )
            for b in hist.get("Data") or []
        ]
        return FortioResult(
            requested_qps=None if requested == "max" else float(requested),
            actual_qps=float(data["ActualQPS"]),
            actual_duration_s=int(data["ActualDuration"]) / 1e9,
            num_threads=int(data["NumThreads"]),
            version=str(data.get("Version", "")),
            start_time=datetime.fromisoformat(str(data["StartTime"]).replace("Z", "+00:00")),
            count=int(hist["Count"]),
            min_ms=float(hist["Min"]) * 1000.0,
            max_ms=float(hist["Max"]) * 1000.0,
            mean_ms=float(hist["Avg"]) * 1000.0,
            percentiles_ms=percentiles,
            histogram=Histogram(buckets=buckets),
            return_codes={str(k): int(v) for k, v in (data.get("RetCodes") or {}).items()},
            socket_count=int(data["SocketCount"]) if "SocketCount" in data else None,
            url=str(data.get("URL", "")),
            labels=str(data.get("Labels", "")),
            raw=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FortioFailed(f"fortio JSON result lacks an expected field: {exc}") from None


def falling_behind_percent(stderr: str) -> float | None:
    """fortio's `WARNING x% of sleep were falling behind` (printed only when catch-up is allowed)."""
    match = FALLING_BEHIND.search(stderr)
    return float(match.group(1)) if match else None


def abort_reason(stderr: str) -> str:
    """The line that says why fortio gave up, for a one-line error message."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("Aborting"):
            return line.strip()
    for line in reversed(stderr.splitlines()):
        if '"level":"err"' in line or '"level":"fatal"' in line:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return line.strip()[:300]
            return f"{entry.get('msg', '')} {entry.get('err', '')}".strip()
    tail = stderr.strip().splitlines()
    return tail[-1][:300] if tail else "no output"


def find_fortio() -> Path:
    """fortio, found where every meshproof command looks (meshproof.tools.find_tool)."""
    from meshproof.tools import ToolMissing, find_tool, tool_search_places

    try:
        return find_tool("fortio")
    except ToolMissing as exc:
        raise FortioMissing(
            f"fortio not found ({', '.join(tool_search_places('fortio'))}): {exc.hint}"
        ) from None


@dataclass(frozen=True)
class FortioOutput:
    result: FortioResult
    stdout: str
    stderr: str
    cpu_s: float | None = None  # CPU seconds fortio used (local runs only)


def run_fortio_local(load: FortioLoad, *, binary: Path | None = None, grace_s: float = 30.0) -> FortioOutput:
    """Run fortio on this machine; the timeout is the run's duration plus a grace period."""
    exe = binary or find_fortio()
    try:
        child = run_child(load.args(str(exe)), timeout=load.duration_s + grace_s)
    except subprocess.TimeoutExpired:
        raise FortioFailed(f"fortio did not finish within {load.duration_s + grace_s:g}s") from None
    return replace(_output(child.returncode, child.stdout, child.stderr), cpu_s=child.cpu_s)


def run_fortio_in_pod(
    cluster: PodExecutor, *, pod: str, namespace: str, container: str, load: FortioLoad, grace_s: float = 60.0
) -> FortioOutput:
    """Run fortio inside the client pod (`kubectl exec` style, as istio/tools does, perf-anchors §1.3)."""
    result = cluster.exec(
        pod, namespace, load.args("fortio"), container=container, timeout=load.duration_s + grace_s
    )
    return _output(int(result.exit_code), str(result.stdout), str(result.stderr))


def _output(returncode: int, stdout: str, stderr: str) -> FortioOutput:
    if returncode != 0 or not stdout.strip():
        raise FortioFailed(f"fortio load exited {returncode}: {abort_reason(stderr)}")
    result = parse_fortio_json(stdout)
    behind = falling_behind_percent(stderr)
    if behind is not None:
        result = replace(result, falling_behind_pct=behind)
    return FortioOutput(result=result, stdout=stdout, stderr=stderr)


def to_run_record(
    result: FortioResult,
    *,
    load: FortioLoad,
    run_id: str,
    arm: str,
    repetition: int,
    order: int,
    limits: ValidityLimits,
    scenarios: Sequence[str] = (),
    raw_files: Sequence[str] = (),
    placement: Placement | None = None,
    loadgen_cpu_s: float | None = None,
) -> RunRecord:
    """A fortio result as a RunRecord, judged valid or not (with reasons) by meshproof.bench.validity."""
    verdict = assess(
        requested_qps=load.qps,
        actual_qps=result.actual_qps,
        requests=result.count,
        errors=result.errors,
        limits=limits,
        connections=load.connections,
        socket_count=result.socket_count if load.keepalive else None,
        falling_behind_pct=result.falling_behind_pct,
    )
    return RunRecord(
        run_id=run_id,
        tool="fortio",
        arm=arm,
        scenarios=list(scenarios),
        repetition=repetition,
        order=order,
        target=load.url,
        requested_qps=load.qps,
        connections=load.connections,
        payload_bytes=load.payload_size,
        requested_duration_s=load.duration_s,
        started_at=result.start_time,
        actual_duration_s=result.actual_duration_s,
        actual_qps=result.actual_qps,
        requests=result.count,
        errors=result.errors,
        return_codes=result.return_codes,
        socket_count=result.socket_count,
        latency=LatencySummary(
            min_ms=result.min_ms,
            mean_ms=result.mean_ms,
            max_ms=result.max_ms,
            percentiles_ms=result.percentiles_ms,
        ),
        histogram=result.histogram,
        valid=verdict.valid,
        invalid_reasons=verdict.reasons,
        warnings=verdict.warnings,
        raw_files=list(raw_files),
        tool_version=result.version,
        loadgen_cpu_s=loadgen_cpu_s,
        placement=placement or Placement(),
        labels=result.labels,
    )
