"""Synthetic benchmark runs for the statistics, calibration and compare tests: one RunRecord from latency
samples (ms), with the histogram and summary the real parsers would build from them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from meshproof.bench.histogram import histogram_from_samples, summary_from_samples
from meshproof.bench.model import Histogram, RunRecord

INVALID_REASON = "actual QPS {qps:.1f} is {pct:.1f}% of the requested 1000 (minimum 99%)"


def run_record(
    samples: np.ndarray,
    *,
    arm: str = "sidecar",
    rep: int = 1,
    actual_qps: float = 1000.0,
    connections: int = 16,
    valid: bool = True,
    histogram: Histogram | None = None,
) -> RunRecord:
    """A fortio run at 1000 req/s requested; an invalid one says it fell short of the rate."""
    return RunRecord(
        run_id=f"fortio-{arm}-r{rep}",
        tool="fortio",
        arm=arm,
        repetition=rep,
        order=rep,
        target="http://127.0.0.1:8080/echo",
        requested_qps=1000,
        connections=connections,
        requested_duration_s=10,
        started_at=datetime(2026, 11, 26, tzinfo=UTC),
        actual_duration_s=10,
        actual_qps=actual_qps,
        requests=len(samples),
        errors=0,
        latency=summary_from_samples(samples),
        histogram=histogram or histogram_from_samples(samples),
        valid=valid,
        invalid_reasons=[] if valid else [INVALID_REASON.format(qps=actual_qps, pct=actual_qps / 10)],
    )


def pod_metrics(name: str, namespace: str | None, tick: int, usage: dict[str, dict[str, str]]) -> dict:
    """A metrics.k8s.io/v1beta1 PodMetrics as metrics-server serves it: container name -> usage
    ({"cpu": "210m", "memory": "60Mi"}); `tick` makes the timestamp (one distinct sample per tick)."""
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": namespace},
        "timestamp": f"2030-01-01T00:00:{tick % 60:02d}Z",
        "window": "15.021s",
        "containers": [{"name": container, "usage": u} for container, u in usage.items()],
    }
