"""Latency histograms from per-request samples, and summaries that keep exact percentiles.

Per-request data (Locust's request log) is binned into log-spaced buckets 0.5% wide: fine enough that a
percentile read from the histogram is within 0.5% of the exact one, coarse enough that a bootstrap over
a million requests stays cheap. The summary's percentiles are computed from the raw samples, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np

from meshproof.bench.model import REPORTED_PERCENTILES, Bucket, Histogram, LatencySummary, percentile_key

# Relative bucket width for per-request samples; far below Locust's own rounding (perf-anchors §4).
RELATIVE_BUCKET_WIDTH = 0.005
# Smallest latency kept distinct: 1 µs (the log-request files are written with µs precision).
FLOOR_MS = 0.001


def histogram_from_samples(samples_ms: Sequence[float] | np.ndarray) -> Histogram:
    values = np.asarray(samples_ms, dtype=float)
    if values.size == 0:
        return Histogram()
    clipped = np.maximum(values, FLOOR_MS)
    step = np.log1p(RELATIVE_BUCKET_WIDTH)
    index = np.floor(np.log(clipped / FLOOR_MS) / step).astype(np.int64)
    unique, counts = np.unique(index, return_counts=True)
    starts = FLOOR_MS * np.exp(unique * step)
    ends = FLOOR_MS * np.exp((unique + 1) * step)
    return Histogram(
        buckets=[
            Bucket(start_ms=float(s), end_ms=float(e), count=int(c))
            for s, e, c in zip(starts, ends, counts, strict=True)
        ]
    )


RoundingScheme = Literal["locust", "fine"]


def histogram_from_rounded(counts_by_ms: Mapping[str, int], scheme: RoundingScheme) -> Histogram:
    """Locust's `response_times` dict ({rounded ms: count}, output-formats §7.1) as buckets centred on
    each key. `scheme` names the rounding that produced the keys: stock Locust (whole ms below 100 ms,
    then 2 significant digits) or the finer one our locustfile installs (`fine_bucket_response_time`)."""
    buckets: list[Bucket] = []
    for key, count in sorted(((float(k), int(v)) for k, v in counts_by_ms.items()), key=lambda kv: kv[0]):
        if count <= 0:
            continue
        step = rounding_step(key, scheme)
        buckets.append(Bucket(start_ms=max(0.0, key - step / 2), end_ms=key + step / 2, count=count))
    return Histogram(buckets=buckets)


def rounding_step(key_ms: float, scheme: RoundingScheme) -> float:
    """The rounding step Locust applied to a response time of about `key_ms` (locust/stats.py
    `bucket_response_time`; perf-anchors §4), or the one of our finer bucketing."""
    decade = 0 if key_ms < 100 else 1 if key_ms < 1000 else 2 if key_ms < 10000 else 3
    base = 1.0 if scheme == "locust" else 0.01 if decade == 0 else 0.1
    return base * 10**decade


def summary_from_samples(
    samples_ms: Sequence[float] | np.ndarray, percentiles: Iterable[float] = REPORTED_PERCENTILES
) -> LatencySummary:
    values = np.asarray(samples_ms, dtype=float)
    if values.size == 0:
        return LatencySummary(min_ms=None, mean_ms=None, max_ms=None, percentiles_ms={})
    return LatencySummary(
        min_ms=float(values.min()),
        mean_ms=float(values.mean()),
        max_ms=float(values.max()),
        percentiles_ms={percentile_key(q): float(np.percentile(values, q)) for q in percentiles},
    )


def summary_from_histogram(
    histogram: Histogram,
    *,
    min_ms: float | None,
    max_ms: float | None,
    mean_ms: float | None,
    percentiles: Iterable[float] = REPORTED_PERCENTILES,
) -> LatencySummary:
    return LatencySummary(
        min_ms=min_ms,
        mean_ms=mean_ms,
        max_ms=max_ms,
        percentiles_ms={percentile_key(q): histogram.percentile(q) for q in percentiles},
    )
