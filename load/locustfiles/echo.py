"""meshproof load scenario "echo": one GET (or POST with a payload) per task against an echo endpoint.

Self-contained on purpose: it is shipped into Locust pods in a ConfigMap and must not import meshproof.

- FastHttpUser, one connection per user (perf-anchors §4).
- Constant-throughput pacing per user (`--meshproof-user-rps`; 0 = as fast as possible). Locust stays a
  closed-loop generator: pacing caps the rate, it cannot send more when the server slows down.
- Latency resolution: Locust rounds response times to whole ms below 100 ms (perf-anchors §4), far
  coarser than a mesh's 0.1-0.3 ms cost. Two fixes, both active:
  * finer buckets: `locust.stats.bucket_response_time` is replaced (supported since Locust 2.43.4) so the
    aggregated histogram (and `--json-file`) keeps 10 µs steps below 100 ms and 3 significant digits above;
  * per-request log: with `--meshproof-request-log-dir`, every worker process appends one CSV row per
    request (`start_time_s,response_time_ms,status,ok`) with µs precision to `requests-<host>-<pid>.csv`.
- CPU guard: Locust's own >90% CPU warning is echoed as `meshproof: load generator CPU above 90%` so the
  runner can mark the run invalid (perf-anchors §7.6).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from typing import Any

import gevent
import locust.stats
from locust import FastHttpUser, events, task
from locust.runners import MasterRunner, WorkerRunner

BUCKETS_MARKER = "MESHPROOF-LOCUST-BUCKETS"
WARMUP_MARKER = "MESHPROOF-LOCUST-WARMUP-DONE"
CPU_MARKER = "meshproof: load generator CPU above 90%"
log = logging.getLogger("meshproof.locustfile")


def fine_bucket_response_time(response_time: float) -> float:
    """10 µs steps below 100 ms, then 3 significant digits (stock Locust keeps 1 ms, then 2 digits)."""
    if response_time < 100:
        return round(response_time, 2)
    if response_time < 1000:
        return float(round(response_time))
    if response_time < 10000:
        return float(round(response_time, -1))
    return float(round(response_time, -2))


FINE_BUCKETS = hasattr(locust.stats, "bucket_response_time")
if FINE_BUCKETS:
    locust.stats.bucket_response_time = fine_bucket_response_time  # type: ignore[assignment]


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("meshproof")
    group.add_argument("--meshproof-path", default="/echo", env_var="MESHPROOF_PATH", help="request path")
    group.add_argument(
        "--meshproof-user-rps",
        type=float,
        default=0.0,
        env_var="MESHPROOF_USER_RPS",
        help="requests/s per user (constant throughput); 0 = no pacing",
    )
    group.add_argument(
        "--meshproof-payload-bytes",
        type=int,
        default=0,
        env_var="MESHPROOF_PAYLOAD_BYTES",
        help="POST this many bytes instead of a GET",
    )
    group.add_argument(
        "--meshproof-warmup-s",
        type=float,
        default=0.0,
        env_var="MESHPROOF_WARMUP_S",
        help="reset the aggregated stats this many seconds after the start (warm-up discarded)",
    )
    group.add_argument(
        "--meshproof-request-log-dir",
        default="",
        env_var="MESHPROOF_REQUEST_LOG_DIR",
        help="write one CSV row per request into this directory (one file per process)",
    )


class RequestLog:
    """Per-request rows, written by the process that made the request (never by a master)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.handle: Any = None

    def on_request(
        self,
        response_time: float,
        start_time: float | None = None,
        response: Any = None,
        exception: Any = None,
        **_: Any,
    ) -> None:
        if self.handle is None:
            os.makedirs(self.directory, exist_ok=True)
            name = f"requests-{socket.gethostname()}-{os.getpid()}.csv"
            self.handle = open(os.path.join(self.directory, name), "w", buffering=1 << 16)  # noqa: SIM115
            self.handle.write("start_time_s,response_time_ms,status,ok\n")
        status = getattr(response, "status_code", 0) or 0
        self.handle.write(f"{start_time or 0.0:.6f},{response_time:.3f},{status},{0 if exception else 1}\n")

    def close(self, **_: Any) -> None:
        if self.handle is not None:
            self.handle.flush()
            self.handle.close()
            self.handle = None


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    directory = getattr(options, "meshproof_request_log_dir", "") if options else ""
    if directory and not isinstance(environment.runner, MasterRunner):
        request_log = RequestLog(directory)
        environment.events.request.add_listener(request_log.on_request)
        environment.events.test_stop.add_listener(request_log.close)
        environment.events.quitting.add_listener(request_log.close)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    # the runner reads this to know how the aggregated response_times keys were rounded
    print(f"{BUCKETS_MARKER} {'fine' if FINE_BUCKETS else 'locust'}", flush=True)
    warmup = float(getattr(environment.parsed_options, "meshproof_warmup_s", 0.0) or 0.0)
    if warmup > 0:
        gevent.spawn_later(warmup, _end_warmup, environment)


def _end_warmup(environment: Any) -> None:
    # the aggregating process drops what the warm-up recorded; workers report deltas, so this is enough
    environment.stats.reset_all()
    print(WARMUP_MARKER, flush=True)


@events.cpu_warning.add_listener
def _cpu_warning(environment: Any, cpu_usage: float, **_: Any) -> None:
    log.warning("%s (%.0f%%)", CPU_MARKER, cpu_usage)


class EchoUser(FastHttpUser):
    """One request per task; pacing from --meshproof-user-rps."""

    def wait_time(self) -> float:
        rps = float(getattr(self.environment.parsed_options, "meshproof_user_rps", 0.0) or 0.0)
        if rps <= 0:
            return 0.0
        # constant_throughput(rps) == constant_pacing(1/rps): wait out the rest of the task's slot
        period = 1.0 / rps
        now = time.perf_counter()
        slot_start = getattr(self, "_slot_start", None)
        # first wait: a random phase, so users spread over the period like fortio's -uniform
        wait = random.uniform(0.0, period) if slot_start is None else max(0.0, period - (now - slot_start))
        self._slot_start = now + wait
        return wait

    @task
    def echo(self) -> None:
        options = self.environment.parsed_options
        path = getattr(options, "meshproof_path", "/echo") or "/echo"
        size = int(getattr(options, "meshproof_payload_bytes", 0) or 0)
        if size > 0:
            self.client.post(path, data=b"x" * size, name=path)
        else:
            self.client.get(path, name=path)
