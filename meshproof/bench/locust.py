"""Locust runners: a local one (processes on this machine) and the pieces of the in-cluster one
(master and workers as pods, see meshproof.bench.cluster), plus the parsers of what Locust writes.

Latency resolution (perf-anchors §4): the local runner reads the per-request log the locustfile writes
(µs precision, one file per worker process); the in-cluster runner reads the master's aggregated
histogram, which the locustfile keeps at 10 µs steps below 100 ms instead of Locust's whole ms.
Warm-up is discarded in both: by request start time locally, by a stats reset on the master in-cluster.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from meshproof.bench.histogram import (
    RoundingScheme,
    histogram_from_rounded,
    histogram_from_samples,
    summary_from_histogram,
    summary_from_samples,
)
from meshproof.bench.model import Histogram, LatencySummary, Placement, RunRecord
from meshproof.bench.proc import run_child
from meshproof.bench.validity import ValidityLimits, assess

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO_ROOT / "load" / "locustfiles" / "echo.py"
BUCKETS_MARKER = "MESHPROOF-LOCUST-BUCKETS"
JSON_BEGIN = "MESHPROOF-LOCUST-JSON-BEGIN"
JSON_END = "MESHPROOF-LOCUST-JSON-END"
EXIT_MARKER = "MESHPROOF-LOCUST-EXIT"
# Locust's own warnings (locust/runners.py) and the locustfile's echo of them
CPU_WARNING = re.compile(
    r"CPU usage above 90%|exceeded cpu threshold|CPU usage threshold was exceeded"
    r"|load generator CPU above 90%"
)


class LocustFailed(Exception):
    """Locust ended without results meshproof can use."""


def locust_version() -> str:
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class LocustLoad:
    """One Locust run: `users` FastHttpUsers (one connection each) paced to `qps` in total."""

    host: str  # scheme://host:port
    path: str
    qps: float | None  # None = unpaced (as fast as the users go)
    users: int
    duration_s: float  # measured window
    warmup_s: float = 0.0  # run this long first; discarded
    processes: int = 1  # worker processes (one per core, perf-anchors §4)
    payload_bytes: int = 0
    stop_timeout_s: float = 2.0

    @property
    def url(self) -> str:
        return f"{self.host}{self.path}"

    @property
    def user_rps(self) -> float:
        return 0.0 if self.qps is None else self.qps / self.users

    @property
    def run_time_s(self) -> int:
        # one padding second: users start with a random phase, so the last whole measured second needs it
        return math.ceil(self.warmup_s + self.duration_s) + 1

    def scenario_args(self) -> list[str]:
        """The locustfile's own options (load/locustfiles/echo.py)."""
        return [
            "--meshproof-path",
            self.path,
            "--meshproof-user-rps",
            f"{self.user_rps:g}",
            "--meshproof-payload-bytes",
            str(self.payload_bytes),
            "--meshproof-warmup-s",
            f"{self.warmup_s:g}",
        ]

    def common_args(self) -> list[str]:
        return [
            "--headless",
            "-u",
            str(self.users),
            # spawn everyone in the first second; the locustfile staggers their first request
            "-r",
            str(self.users),
            "-t",
            f"{self.run_time_s}s",
            "--host",
            self.host,
            "--stop-timeout",
            f"{self.stop_timeout_s:g}",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]


def local_command(load: LocustLoad, *, locustfile: Path, out_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), *load.common_args()]
    if load.processes > 1:
        argv += ["--processes", str(load.processes)]
    argv += ["--json-file", str(out_dir / "locust-stats"), "--csv", str(out_dir / "locust")]
    argv += [*load.scenario_args(), "--meshproof-request-log-dir", str(out_dir / "requests")]
    return argv


@dataclass(frozen=True)
class RequestSamples:
    """Per-request rows of one run, all processes merged, ordered by start time."""

    start_s: np.ndarray
    latency_ms: np.ndarray
    status: np.ndarray
    ok: np.ndarray
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.start_s.size)


def read_request_logs(directory: Path) -> RequestSamples:
    files = sorted(directory.glob("requests-*.csv"))
    starts: list[float] = []
    latencies: list[float] = []
    statuses: list[int] = []
    oks: list[int] = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    parsed = (
                        float(row["start_time_s"]),
                        float(row["response_time_ms"]),
                        int(row["status"]),
                        int(row["ok"]),
                    )
                except (KeyError, TypeError, ValueError):
                    continue  # a row cut short by a killed process
                starts.append(parsed[0])
                latencies.append(parsed[1])
                statuses.append(parsed[2])
                oks.append(parsed[3])
    order = np.argsort(np.array(starts, dtype=float), kind="stable")
    return RequestSamples(
        start_s=np.array(starts, dtype=float)[order],
        latency_ms=np.array(latencies, dtype=float)[order],
        status=np.array(statuses, dtype=np.int64)[order],
        ok=np.array(oks, dtype=np.int64)[order],
        files=files,
    )


@dataclass(frozen=True)
class MeasuredWindow:
    """The requests that started inside the whole seconds after the warm-up."""

    samples: RequestSamples
    per_second: list[int]
    start_s: float

    @property
    def seconds(self) -> int:
        return len(self.per_second)

    @property
    def qps(self) -> float:
        return float(sum(self.per_second) / self.seconds) if self.seconds else 0.0


def measured_window(samples: RequestSamples, warmup_s: float, duration_s: float) -> MeasuredWindow:
    """Drop the warm-up (counted from the first request) and the last partial second."""
    if len(samples) == 0:
        empty = RequestSamples(
            np.array([]), np.array([]), np.array([], dtype=np.int64), np.array([], dtype=np.int64)
        )
        return MeasuredWindow(samples=empty, per_second=[], start_s=0.0)
    start = float(samples.start_s[0]) + warmup_s
    last = float(samples.start_s[-1])
    whole_seconds = int(min(duration_s, max(0.0, last - start)))
    end = start + whole_seconds
    keep = (samples.start_s >= start) & (samples.start_s < end)
    kept = RequestSamples(
        start_s=samples.start_s[keep],
        latency_ms=samples.latency_ms[keep],
        status=samples.status[keep],
        ok=samples.ok[keep],
        files=samples.files,
    )
    counts = np.bincount(np.floor(kept.start_s - start).astype(np.int64), minlength=whole_seconds)
    return MeasuredWindow(samples=kept, per_second=[int(c) for c in counts[:whole_seconds]], start_s=start)


@dataclass(frozen=True)
class LocustStats:
    """One endpoint entry of Locust's `--json-file` output (output-formats §7.1)."""

    name: str
    num_requests: int
    num_failures: int
    start_time: float
    last_request_timestamp: float
    min_ms: float
    max_ms: float
    total_ms: float
    response_times: dict[str, int]
    per_second: dict[int, int]


def parse_locust_json(text: str) -> list[LocustStats]:
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LocustFailed(f"Locust stats are not JSON ({exc.msg})") from None
    if not isinstance(entries, list):
        raise LocustFailed("Locust stats JSON is not a list of endpoint entries")
    stats: list[LocustStats] = []
    for entry in entries:
        try:
            stats.append(
                LocustStats(
                    name=str(entry["name"]),
                    num_requests=int(entry["num_requests"]),
                    num_failures=int(entry["num_failures"]),
                    start_time=float(entry["start_time"]),
                    last_request_timestamp=float(entry.get("last_request_timestamp") or entry["start_time"]),
                    min_ms=float(entry.get("min_response_time") or 0.0),
                    max_ms=float(entry.get("max_response_time") or 0.0),
                    total_ms=float(entry.get("total_response_time") or 0.0),
                    response_times={str(k): int(v) for k, v in (entry.get("response_times") or {}).items()},
                    per_second={
                        int(float(k)): int(v) for k, v in (entry.get("num_reqs_per_sec") or {}).items()
                    },
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LocustFailed(f"Locust stats entry lacks an expected field: {exc}") from None
    return stats


def bucket_scheme(log_text: str) -> RoundingScheme:
    match = re.search(rf"{BUCKETS_MARKER} (fine|locust)", log_text)
    return "fine" if match and match.group(1) == "fine" else "locust"


def cpu_warning_seen(log_text: str) -> bool:
    return bool(CPU_WARNING.search(log_text))


@dataclass(frozen=True)
class LocustOutput:
    record: RunRecord
    returncode: int


def run_locust_local(
    load: LocustLoad,
    *,
    out_dir: Path,
    run_id: str,
    arm: str,
    repetition: int,
    order: int,
    limits: ValidityLimits,
    results_root: Path,
    locustfile: Path = LOCUSTFILE,
    grace_s: float = 60.0,
) -> LocustOutput:
    """Run Locust as processes on this machine and turn its per-request logs into a RunRecord."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = local_command(load, locustfile=locustfile, out_dir=out_dir)
    started = datetime.now(UTC)
    try:
        proc = run_child(argv, timeout=load.run_time_s + load.stop_timeout_s + grace_s)
    except subprocess.TimeoutExpired:
        raise LocustFailed(f"Locust did not finish within {load.run_time_s + grace_s:g}s") from None
    (out_dir / "locust.stderr.log").write_text(proc.stderr, encoding="utf-8")
    # exit code 1 only means "some request failed" (--exit-code-on-error); the error ratio judges that
    if proc.returncode not in (0, 1):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise LocustFailed(f"Locust exited {proc.returncode}: {tail[0][:300]}")
    samples = read_request_logs(out_dir / "requests")
    if len(samples) == 0:
        raise LocustFailed(
            f"Locust wrote no per-request log under {out_dir / 'requests'} (is {load.host} up?)"
        )
    window = measured_window(samples, load.warmup_s, load.duration_s)
    warnings: list[str] = []
    stats_file = out_dir / "locust-stats.json"
    if stats_file.is_file():
        logged = len(samples)
        reported = sum(s.num_requests for s in parse_locust_json(stats_file.read_text(encoding="utf-8")))
        # the JSON was reset after the warm-up, so it may only be smaller than the log
        if reported > logged:
            warnings.append(f"Locust counted {reported} requests but the per-request logs hold {logged}")
    record = samples_to_record(
        window,
        load=load,
        run_id=run_id,
        arm=arm,
        repetition=repetition,
        order=order,
        limits=limits,
        started_at=started,
        cpu_warning=cpu_warning_seen(proc.stderr),
        raw_files=[str(p.relative_to(results_root)) for p in [*samples.files, stats_file] if p.exists()],
        placement=Placement(policy="loopback"),
        extra_warnings=warnings,
    )
    # includes Locust's start-up and the warm-up: a conservative requests-per-CPU-second
    record = record.model_copy(update={"loadgen_cpu_s": proc.cpu_s})
    return LocustOutput(record=record, returncode=proc.returncode)


def samples_to_record(
    window: MeasuredWindow,
    *,
    load: LocustLoad,
    run_id: str,
    arm: str,
    repetition: int,
    order: int,
    limits: ValidityLimits,
    started_at: datetime,
    cpu_warning: bool,
    raw_files: Sequence[str] = (),
    placement: Placement | None = None,
    extra_warnings: Sequence[str] = (),
    scenarios: Sequence[str] = (),
) -> RunRecord:
    data = window.samples
    succeeded = (data.ok == 1) & (data.status >= 200) & (data.status < 300)
    errors = int((~succeeded).sum())
    codes, counts = np.unique(data.status, return_counts=True)
    return_codes = {str(int(c) if c > 0 else -1): int(n) for c, n in zip(codes, counts, strict=True)}
    reasons_from_window = [] if window.seconds >= 1 else ["measured window is shorter than one second"]
    verdict = assess(
        requested_qps=load.qps,
        actual_qps=window.qps,
        requests=len(data),
        errors=errors,
        limits=limits,
        loadgen_cpu_warning=cpu_warning,
    )
    reasons = [*reasons_from_window, *verdict.reasons]
    return RunRecord(
        run_id=run_id,
        tool="locust",
        arm=arm,
        scenarios=list(scenarios),
        repetition=repetition,
        order=order,
        target=load.url,
        requested_qps=load.qps,
        connections=load.users,
        payload_bytes=load.payload_bytes,
        requested_duration_s=load.duration_s,
        started_at=started_at,
        actual_duration_s=float(window.seconds),
        actual_qps=window.qps,
        requests=len(data),
        errors=errors,
        return_codes=return_codes,
        socket_count=None,
        latency=summary_from_samples(data.latency_ms),
        histogram=histogram_from_samples(data.latency_ms),
        per_second_counts=window.per_second,
        valid=not reasons,
        invalid_reasons=reasons,
        warnings=[*verdict.warnings, *extra_warnings],
        raw_files=list(raw_files),
        tool_version=locust_version(),
        placement=placement or Placement(),
    )


# --- in-cluster master output -------------------------------------------------------------------------


def master_shell_command(argv: Sequence[str], json_path: str = "/tmp/meshproof-locust") -> str:
    """The master container's shell script: run Locust, then print its JSON between markers so the
    stats can be read back from the pod log after the Job completed (the pod exits 0 either way)."""
    quoted = " ".join(_sh_quote(a) for a in [*argv, "--json-file", json_path])
    return (
        f"{quoted}; rc=$?; echo {EXIT_MARKER} $rc; echo {JSON_BEGIN}; "
        f"cat {json_path}.json 2>/dev/null || echo '[]'; echo; echo {JSON_END}"
    )


def _sh_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:=@%+-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


@dataclass(frozen=True)
class MasterOutput:
    exit_code: int
    stats: list[LocustStats]
    scheme: RoundingScheme
    cpu_warning: bool


def parse_master_log(log_text: str) -> MasterOutput:
    exit_match = re.search(rf"{EXIT_MARKER} (\d+)", log_text)
    begin = log_text.find(JSON_BEGIN)
    end = log_text.find(JSON_END, begin + 1)
    if exit_match is None or begin < 0 or end < 0:
        raise LocustFailed("the Locust master log has no result markers (did the run finish?)")
    body = log_text[begin + len(JSON_BEGIN) : end].strip()
    return MasterOutput(
        exit_code=int(exit_match.group(1)),
        stats=parse_locust_json(body or "[]"),
        scheme=bucket_scheme(log_text),
        cpu_warning=cpu_warning_seen(log_text),
    )


def master_output_to_record(
    output: MasterOutput,
    *,
    load: LocustLoad,
    run_id: str,
    arm: str,
    repetition: int,
    order: int,
    limits: ValidityLimits,
    placement: Placement,
    scenarios: Sequence[str] = (),
    raw_files: Sequence[str] = (),
) -> RunRecord:
    """The master's aggregated stats (already reset after the warm-up) as a RunRecord."""
    if not output.stats:
        raise LocustFailed("the Locust master reported no requests")
    merged: dict[str, int] = {}
    per_second: dict[int, int] = {}
    for entry in output.stats:
        for key, count in entry.response_times.items():
            merged[key] = merged.get(key, 0) + count
        for second, count in entry.per_second.items():
            per_second[second] = per_second.get(second, 0) + count
    histogram: Histogram = histogram_from_rounded(merged, output.scheme)
    requests = sum(e.num_requests for e in output.stats)
    failures = sum(e.num_failures for e in output.stats)
    # whole seconds only: the first and last second of the window are partial
    seconds = sorted(per_second)[1:-1]
    counts = [per_second[s] for s in seconds]
    qps = sum(counts) / len(counts) if counts else 0.0
    verdict = assess(
        requested_qps=load.qps,
        actual_qps=qps,
        requests=requests,
        errors=failures,
        limits=limits,
        loadgen_cpu_warning=output.cpu_warning,
    )
    summary: LatencySummary = summary_from_histogram(
        histogram,
        min_ms=min(e.min_ms for e in output.stats),
        max_ms=max(e.max_ms for e in output.stats),
        mean_ms=sum(e.total_ms for e in output.stats) / requests if requests else None,
    )
    warnings = list(verdict.warnings)
    if output.scheme == "locust":
        warnings.append("Locust's stock rounding (whole ms below 100 ms): percentiles are coarse")
    return RunRecord(
        run_id=run_id,
        tool="locust",
        arm=arm,
        scenarios=list(scenarios),
        repetition=repetition,
        order=order,
        target=load.url,
        requested_qps=load.qps,
        connections=load.users,
        payload_bytes=load.payload_bytes,
        requested_duration_s=load.duration_s,
        started_at=datetime.fromtimestamp(min(e.start_time for e in output.stats), UTC),
        actual_duration_s=float(len(counts)),
        actual_qps=qps,
        requests=requests,
        errors=failures,
        return_codes={},
        latency=summary,
        histogram=histogram,
        per_second_counts=counts,
        valid=verdict.valid,
        invalid_reasons=verdict.reasons,
        warnings=warnings,
        raw_files=list(raw_files),
        tool_version=locust_version(),
        placement=placement,
    )
