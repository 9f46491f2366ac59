"""Real Locust (the venv's, FastHttpUser, the shipped locustfile) against a real HTTP server on
127.0.0.1 for a few seconds: counts and percentiles are sane, warm-up is cut, and latency keeps its
resolution below Locust's whole-millisecond rounding through the per-request log and the finer buckets.
No test asserts a latency or throughput figure: this machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meshproof.bench.local import LocalArm, LocalBenchSpec, run_local
from meshproof.bench.localserver import serving
from meshproof.bench.locust import read_request_logs
from meshproof.bench.validity import ValidityLimits

pytestmark = pytest.mark.local_real


def test_paced_locust_run_is_sane_and_keeps_sub_millisecond_resolution(tmp_path: Path) -> None:
    with serving() as base:
        spec = LocalBenchSpec(
            arms=(LocalArm("local", f"{base}/echo"),),
            repetitions=1,
            tool="locust",
            qps=100,
            connections=4,
            duration_s=2,
            warmup_s=1,
            limits=ValidityLimits(min_qps_ratio=0.95),
        )
        results = run_local(spec, tmp_path)
    (run,) = results.runs
    assert run.valid, run.invalid_reasons
    assert run.per_second_counts is not None and len(run.per_second_counts) == 2
    assert 190 <= run.requests <= 210 and run.errors == 0
    p = run.latency.percentiles_ms
    assert run.latency.min_ms <= p["p50"] <= p["p90"] <= p["p99"] <= p["p99.9"] <= run.latency.max_ms

    logs = read_request_logs(tmp_path / "raw" / "locust-local-r1" / "requests")
    assert len(logs) >= run.requests  # the log also holds the warm-up requests the record dropped
    assert np.all(logs.status == 200)
    # µs-precision rows: most latencies are not whole milliseconds (Locust's own stats would round them)
    assert np.mean(logs.latency_ms != np.round(logs.latency_ms)) > 0.9
    stats = json.loads(
        (tmp_path / "raw" / "locust-local-r1" / "locust-stats.json").read_text(encoding="utf-8")
    )
    keys = [float(k) for entry in stats for k in entry["response_times"]]
    assert any(k != round(k) for k in keys), "the locustfile's 10 µs buckets were not installed"


def test_locust_against_a_server_that_cannot_keep_up_is_invalid(tmp_path: Path) -> None:
    # Locust is closed-loop: a slow server lowers the offered rate; the QPS guard must catch it
    with serving(delay_ms=100) as base:
        spec = LocalBenchSpec(
            arms=(LocalArm("local", f"{base}/echo"),),
            repetitions=1,
            tool="locust",
            qps=100,
            connections=2,
            duration_s=2,
            warmup_s=0.5,
        )
        results = run_local(spec, tmp_path)
    (run,) = results.runs
    assert not run.valid and "could not keep up" in run.invalid_reasons[0]
    assert run.latency.percentiles_ms["p50"] >= 100
