"""Statistics over runs: the difference between two groups of repetitions, with a confidence interval.

The unit of replication is the **repetition** (Kalibera & Jones; perf-anchors §7.8-9). Requests inside
one run are not independent samples of the system: they share the run's connections, its placement and
the machine's state during those seconds, and unchanged runs on a shared host differ by far more than
the request-level noise inside one run (issue 12: one-repetition intervals of +-0.001 ms against
run-to-run moves of 0.027 ms). So:

- each run contributes one value per metric (its p50, p90, ..., or its achieved req/s);
- a group's value is the **mean over its repetitions** of that per-run value;
- the interval of (current - baseline) is a Student t interval on the repetition values: Welch's for two
  independent groups (a baseline file against a current file), paired by repetition when both sides
  were measured interleaved in the same session (arms alternate inside each repetition, so drift of the
  host lands on both and cancels in the per-repetition difference);
- fewer than two repetitions on a side gives **no interval**, and the metric is "not judged".

Within-run noise is not added on top: it is already part of each repetition's value and so of the
spread between repetitions (adding it again counts it twice). With 3 repetitions t has few degrees of
freedom and the interval is honest rather than narrow; more repetitions narrow it.

The relative interval is the absolute one divided by the baseline value (a fixed scale), so it cannot
blow up when a resampled baseline comes near zero.

A percentile is only judged when every run has at least `min_tail_samples` requests beyond it
(p99 needs >= 1000 requests at the default 10): a p99.9 from 600 requests is the maximum, and the
maximum of a short run on a shared machine measures the machine, not the system. A difference smaller
than the histogram bucket the percentile falls in is flagged: inside a bucket the value is interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as scipy_stats

from meshproof.bench.model import (
    REPORTED_PERCENTILES,
    RunRecord,
    percentile_key,
)

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_TAIL_SAMPLES = 10
# an interval needs a spread, so at least two repetitions per side; 3 is the default everywhere
MIN_REPS_FOR_INTERVAL = 2
DEFAULT_REPETITIONS = 3
# benchstat's convention: below 3 repetitions per side a rank test cannot say anything useful
MIN_REPS_FOR_MANN_WHITNEY = 3
THROUGHPUT = "throughput"


@dataclass(frozen=True)
class MetricDiff:
    """current - baseline for one metric, with the interval of that difference."""

    metric: str  # p50 | p90 | p99 | p99.9 | throughput
    unit: str  # ms | req/s
    baseline: float  # mean over the baseline's repetitions
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
    warnings: tuple[str, ...] = ()
    paired: bool = False
    baseline_values: tuple[float, ...] = ()
    current_values: tuple[float, ...] = ()

    @property
    def has_interval(self) -> bool:
        return self.diff_low is not None and self.diff_high is not None

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.diff_low > 0 or self.diff_high < 0)  # type: ignore[operator]


def welch_interval(
    baseline: Sequence[float], current: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """Welch's t interval of mean(current) - mean(baseline), repetitions as the samples; None below two
    repetitions on a side."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(current, dtype=float)
    if min(b.size, c.size) < MIN_REPS_FOR_INTERVAL:
        return None
    diff = float(c.mean() - b.mean())
    vb, vc = b.var(ddof=1) / b.size, c.var(ddof=1) / c.size
    se = math.sqrt(vb + vc)
    if se == 0:
        return diff, diff
    df = (vb + vc) ** 2 / (vb**2 / (b.size - 1) + vc**2 / (c.size - 1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return diff - half, diff + half


def paired_interval(
    baseline: Sequence[float], current: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """t interval of the mean per-repetition difference (current[i] - baseline[i] were measured side by
    side); None below two pairs."""
    d = np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)
    if d.size < MIN_REPS_FOR_INTERVAL:
        return None
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    if se == 0:
        return mean, mean
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * se
    return mean - half, mean + half


def mann_whitney(baseline: Sequence[float], current: Sequence[float]) -> float | None:
    if min(len(baseline), len(current)) < MIN_REPS_FOR_MANN_WHITNEY:
        return None
    if len(set(baseline) | set(current)) == 1:
        return 1.0
    return float(scipy_stats.mannwhitneyu(current, baseline, alternative="two-sided").pvalue)


def _pairs(
    baseline: Sequence[RunRecord], current: Sequence[RunRecord]
) -> tuple[list[RunRecord], list[RunRecord], int] | None:
    """The two sides matched by repetition number (repetitions present on one side only are dropped:
    an invalid run leaves a hole), with the count dropped; None when a repetition repeats on a side or
    fewer than two pairs remain."""
    by_rep_b = {r.repetition: r for r in baseline}
    by_rep_c = {r.repetition: r for r in current}
    if len(by_rep_b) != len(baseline) or len(by_rep_c) != len(current):
        return None
    reps = sorted(set(by_rep_b) & set(by_rep_c))
    if len(reps) < MIN_REPS_FOR_INTERVAL:
        return None
    dropped = len(baseline) + len(current) - 2 * len(reps)
    return [by_rep_b[k] for k in reps], [by_rep_c[k] for k in reps], dropped


def compare_groups(
    baseline: Sequence[RunRecord],
    current: Sequence[RunRecord],
    *,
    percentiles: Sequence[float] = REPORTED_PERCENTILES,
    confidence: float = DEFAULT_CONFIDENCE,
    min_tail_samples: int = DEFAULT_MIN_TAIL_SAMPLES,
    paired: bool = False,
) -> list[MetricDiff]:
    """Latency percentiles and throughput of `current` against `baseline` (both lists of valid runs).

    `paired`: the two sides were measured interleaved, repetition by repetition (one session); runs are
    matched by repetition number (a run without a partner is left out), and with fewer than two pairs the
    comparison falls back to Welch's interval and says so."""
    if not baseline or not current:
        raise ValueError("compare_groups needs at least one run on each side")
    notes: list[str] = []
    if paired:
        matched = _pairs(baseline, current)
        if matched is None:
            paired = False
            notes.append("repetitions do not pair up: unpaired (Welch) interval")
        else:
            baseline, current, dropped = matched
            if dropped:
                notes.append(f"{dropped} run(s) without a partner in the same repetition left out")
    fewest = min(r.histogram.count for r in (*baseline, *current))
    diffs: list[MetricDiff] = []
    for q in percentiles:
        thin = _thin_tail(fewest, q, min_tail_samples)
        base_values = [r.histogram.percentile(q) for r in baseline]
        cur_values = [r.histogram.percentile(q) for r in current]
        diff = _metric_diff(
            percentile_key(q),
            "ms",
            base_values,
            cur_values,
            confidence=confidence,
            paired=paired,
            note=thin,
            notes=notes,
        )
        bucket = max(r.histogram.bucket_width_at(q) for r in (*baseline, *current))
        if not thin and math.isfinite(bucket) and abs(diff.diff) < bucket:
            diff = _with_warning(
                diff,
                f"the difference ({abs(diff.diff):.3f} ms) is smaller than the {bucket:.3f} ms histogram "
                f"bucket {diff.metric} falls in: inside a bucket the value is interpolated",
            )
        diffs.append(diff)
    diffs.append(
        _metric_diff(
            THROUGHPUT,
            "req/s",
            [r.actual_qps for r in baseline],
            [r.actual_qps for r in current],
            confidence=confidence,
            paired=paired,
            note="",
            notes=notes,
        )
    )
    return diffs


def _with_warning(diff: MetricDiff, warning: str) -> MetricDiff:
    return replace(diff, warnings=(*diff.warnings, warning))


def _thin_tail(fewest: int, q: float, min_tail_samples: int) -> str:
    """Why percentile q is not judged: the smallest run leaves too few requests beyond it ("" if judged)."""
    tail = fewest * (1 - q / 100)
    if tail >= min_tail_samples:
        return ""
    return (
        f"not judged: {fewest} requests leave {tail:.1f} beyond {percentile_key(q)} (need {min_tail_samples})"
    )


def _one_repetition(base_n: int, cur_n: int) -> str:
    return (
        f"not judged: {min(base_n, cur_n)} repetition(s) on a side give no interval "
        f"(run-to-run spread is unknown; run >= {DEFAULT_REPETITIONS} repetitions)"
    )


def _metric_diff(
    metric: str,
    unit: str,
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    confidence: float,
    paired: bool,
    note: str,
    notes: Sequence[str],
) -> MetricDiff:
    """One metric compared from its value per repetition on each side. `note` non-empty: not judged."""
    base_point = float(np.mean(baseline))
    cur_point = float(np.mean(current))
    interval: tuple[float, float] | None = None
    if not note:
        interval = (paired_interval if paired else welch_interval)(baseline, current, confidence)
        if interval is None:
            note = _one_repetition(len(baseline), len(current))
    low, high = interval if interval is not None else (None, None)
    rel_low = rel_high = None
    if low is not None and high is not None and base_point > 0:
        rel_low, rel_high = 100 * low / base_point, 100 * high / base_point
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
        note="; ".join(n for n in (note, *notes) if n),
        paired=paired,
        baseline_values=tuple(float(v) for v in baseline),
        current_values=tuple(float(v) for v in current),
    )


def _rel(current: float, baseline: float) -> float:
    return (current / baseline - 1) * 100 if baseline else float("nan")
