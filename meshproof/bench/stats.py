"""Statistics over runs: the difference between two groups of runs as a median with a bootstrap
confidence interval, and a Mann-Whitney U test where repetitions allow (perf-anchors §5, §7.9).

The bootstrap is two-level so that one repetition still yields an interval: resample repetitions with
replacement (where the run-to-run variance lives, Kalibera & Jones), then resample the requests inside
each chosen repetition (from its latency histogram, through the exact bootstrap distribution of the
percentile's rank; see resample_histogram_percentiles). The statistic of a group is the median over its
repetitions of the per-repetition percentile, the same statistic the point estimate uses.

A percentile is only judged when every run has at least `min_tail_samples` requests beyond it
(p99 needs >= 1000 requests at the default 10): a p99.9 from 600 requests is the maximum, and the
maximum of a short run on a shared machine measures the machine, not the system.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from meshproof.bench.model import (
    REPORTED_PERCENTILES,
    Histogram,
    RunRecord,
    percentile_key,
)

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_TAIL_SAMPLES = 10
# benchstat's convention: below 3 repetitions per side a rank test cannot say anything useful
MIN_REPS_FOR_MANN_WHITNEY = 3
THROUGHPUT = "throughput"


@dataclass(frozen=True)
class MetricDiff:
    """current - baseline for one metric, with the interval of that difference."""

    metric: str  # p50 | p90 | p99 | p99.9 | throughput
    unit: str  # ms | req/s
    baseline: float
    current: float
    diff: float
    diff_low: float | None
    diff_high: float | None
    rel_pct: float
    rel_low_pct: float | None
    rel_high_pct: float | None
    baseline_reps: int
    current_reps: int
    p_value: float | None = None
    note: str = ""

    @property
    def has_interval(self) -> bool:
        return self.diff_low is not None and self.diff_high is not None

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.diff_low > 0 or self.diff_high < 0)  # type: ignore[operator]


def resample_histogram_percentiles(
    histogram: Histogram, percentiles: Sequence[float], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Percentiles of `resamples` request-level bootstrap resamples of one run: shape (resamples, len(q)).

    Drawn from the exact bootstrap distribution of an order statistic instead of re-drawing every
    request: in a resample of n requests, the k-th smallest is at or below the j-th smallest original
    iff at least k of the n draws fall at or below it, a Binomial(n, j/n) event. So the rank J of the
    resampled percentile has P(J <= j) = P(Binomial(n, j/n) >= k); J is drawn by inverting that, and
    mapped to a latency by interpolating the histogram at cumulative count J, like the percentile itself.
    Same distribution as the naive bootstrap per percentile, at a cost independent of n.
    """
    starts, ends, counts = histogram.arrays()
    total = int(counts.sum())
    out = np.full((resamples, len(percentiles)), np.nan)
    if total == 0:
        return out
    cumulative = counts.cumsum()
    for i, q in enumerate(percentiles):
        k = max(1, math.ceil(total * q / 100))
        # outside k +- 12 standard deviations the rank's CDF is 0 or 1 to double precision
        spread = 12 * math.sqrt(total * (q / 100) * (1 - q / 100)) + 2
        ranks = np.arange(max(1, int(k - spread)), min(total, int(k + spread)) + 1)
        cdf = scipy_stats.binom.sf(k - 1, total, ranks / total)
        drawn = ranks[np.minimum(np.searchsorted(cdf, rng.random(resamples)), ranks.size - 1)]
        out[:, i] = _value_at_rank(starts, ends, counts, cumulative, drawn)
    return out


def _value_at_rank(
    starts: np.ndarray, ends: np.ndarray, counts: np.ndarray, cumulative: np.ndarray, ranks: np.ndarray
) -> np.ndarray:
    """The latency at cumulative count `ranks`, interpolated inside its bucket (as Histogram.percentile)."""
    index = np.minimum(np.searchsorted(cumulative, ranks, side="left"), counts.size - 1)
    before = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0)
    fraction = np.clip((ranks - before) / counts[index], 0.0, 1.0)
    return starts[index] + (ends[index] - starts[index]) * fraction


def group_latency_bootstrap(
    runs: Sequence[RunRecord], percentiles: Sequence[float], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap distribution of median-over-repetitions percentiles: shape (resamples, len(percentiles))."""
    per_run = np.stack(
        [resample_histogram_percentiles(r.histogram, percentiles, resamples, rng) for r in runs]
    )
    n_runs = len(runs)
    if n_runs == 1:
        return per_run[0]
    chosen_runs = rng.integers(0, n_runs, size=(resamples, n_runs))
    # each draw of a run takes an independent request-level resample of it (a random column)
    chosen_cols = rng.integers(0, resamples, size=(resamples, n_runs))
    picked = per_run[chosen_runs, chosen_cols, :]  # (resamples, n_runs, len(percentiles))
    return np.median(picked, axis=1)


def group_throughput_bootstrap(
    runs: Sequence[RunRecord], resamples: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Bootstrap of the group's throughput, or None when the data cannot give an interval: repetitions
    are resampled when there are at least two; a single run needs per-second counts (Locust has them,
    fortio does not)."""
    if len(runs) >= 2:
        values = np.array([r.actual_qps for r in runs])
        return np.median(values[rng.integers(0, len(values), size=(resamples, len(values)))], axis=1)
    seconds = runs[0].per_second_counts if runs else None
    if not seconds or len(seconds) < 2:
        return None
    per_second = np.array(seconds, dtype=float)
    return per_second[rng.integers(0, len(per_second), size=(resamples, len(per_second)))].mean(axis=1)


def median_percentile(runs: Sequence[RunRecord], q: float) -> float:
    return float(np.median([r.histogram.percentile(q) for r in runs]))


def median_throughput(runs: Sequence[RunRecord]) -> float:
    return float(np.median([r.actual_qps for r in runs]))


def mann_whitney(baseline: Sequence[float], current: Sequence[float]) -> float | None:
    if min(len(baseline), len(current)) < MIN_REPS_FOR_MANN_WHITNEY:
        return None
    if len(set(baseline) | set(current)) == 1:
        return 1.0
    return float(scipy_stats.mannwhitneyu(current, baseline, alternative="two-sided").pvalue)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values[np.isfinite(values)], [alpha, 1 - alpha])
    return float(low), float(high)


def compare_groups(
    baseline: Sequence[RunRecord],
    current: Sequence[RunRecord],
    *,
    percentiles: Sequence[float] = REPORTED_PERCENTILES,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    min_tail_samples: int = DEFAULT_MIN_TAIL_SAMPLES,
) -> list[MetricDiff]:
    """Latency percentiles and throughput of `current` against `baseline` (both lists of valid runs)."""
    if not baseline or not current:
        raise ValueError("compare_groups needs at least one run on each side")
    rng = np.random.default_rng(seed)
    base_boot = group_latency_bootstrap(baseline, percentiles, resamples, rng)
    cur_boot = group_latency_bootstrap(current, percentiles, resamples, rng)
    fewest = min(r.histogram.count for r in (*baseline, *current))
    diffs: list[MetricDiff] = []
    for i, q in enumerate(percentiles):
        note = _thin_tail(fewest, q, min_tail_samples)
        diffs.append(
            _metric_diff(
                percentile_key(q),
                "ms",
                baseline=[r.histogram.percentile(q) for r in baseline],
                current=[r.histogram.percentile(q) for r in current],
                points=(median_percentile(baseline, q), median_percentile(current, q)),
                boot=None if note else (base_boot[:, i], cur_boot[:, i]),
                confidence=confidence,
                note=note,
            )
        )
    diffs.append(_throughput_diff(baseline, current, resamples, confidence, rng))
    return diffs


def _throughput_diff(
    baseline: Sequence[RunRecord],
    current: Sequence[RunRecord],
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> MetricDiff:
    base_boot = group_throughput_bootstrap(baseline, resamples, rng)
    cur_boot = group_throughput_bootstrap(current, resamples, rng)
    boot = None if base_boot is None or cur_boot is None else (base_boot, cur_boot)
    return _metric_diff(
        THROUGHPUT,
        "req/s",
        baseline=[r.actual_qps for r in baseline],
        current=[r.actual_qps for r in current],
        points=(median_throughput(baseline), median_throughput(current)),
        boot=boot,
        confidence=confidence,
        note="" if boot else _NO_THROUGHPUT_INTERVAL,
    )


_NO_THROUGHPUT_INTERVAL = (
    "no interval: one repetition without per-second counts (repeat the run to judge throughput)"
)


def _thin_tail(fewest: int, q: float, min_tail_samples: int) -> str:
    """Why percentile q is not judged: the smallest run leaves too few requests beyond it ("" if judged)."""
    tail = fewest * (1 - q / 100)
    if tail >= min_tail_samples:
        return ""
    return (
        f"not judged: {fewest} requests leave {tail:.1f} beyond {percentile_key(q)} (need {min_tail_samples})"
    )


def _metric_diff(
    metric: str,
    unit: str,
    *,
    baseline: Sequence[float],
    current: Sequence[float],
    points: tuple[float, float],
    boot: tuple[np.ndarray, np.ndarray] | None,
    confidence: float,
    note: str,
) -> MetricDiff:
    """One metric compared: `baseline`/`current` hold its value per run (for the rank test), `points` the
    two medians, `boot` the two sides' bootstrap replicates (None: no interval, say why in `note`)."""
    base_point, cur_point = points
    low = high = rel_low = rel_high = None
    if boot is not None:
        base_boot, cur_boot = boot
        low, high = _interval(cur_boot - base_boot, confidence)
        rel_low, rel_high = _interval((cur_boot / base_boot - 1) * 100, confidence)
    return MetricDiff(
        metric=metric,
        unit=unit,
        baseline=base_point,
        current=cur_point,
        diff=cur_point - base_point,
        diff_low=low,
        diff_high=high,
        rel_pct=_rel(cur_point, base_point),
        rel_low_pct=rel_low,
        rel_high_pct=rel_high,
        baseline_reps=len(baseline),
        current_reps=len(current),
        p_value=mann_whitney(baseline, current),
        note=note,
    )


def _rel(current: float, baseline: float) -> float:
    return (current / baseline - 1) * 100 if baseline else float("nan")
