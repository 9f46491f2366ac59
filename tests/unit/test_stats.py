"""Statistics on synthetic latency samples with known shifts (fixed seeds): a real 10% shift is found with
an interval that excludes zero; no shift is not flagged; one repetition still yields an interval;
percentiles without enough tail samples are not judged; Mann-Whitney appears only with repetitions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from meshproof.bench.compare import Thresholds, Verdict, judge
from meshproof.bench.histogram import histogram_from_samples, summary_from_samples
from meshproof.bench.model import Histogram, RunRecord
from meshproof.bench.stats import THROUGHPUT, compare_groups, mann_whitney, resample_histogram_percentiles


def run(
    samples: np.ndarray, rep: int = 1, qps: float = 1000.0, per_second: list[int] | None = None
) -> RunRecord:
    return RunRecord(
        run_id=f"r{rep}",
        tool="fortio",
        arm="sidecar",
        repetition=rep,
        order=rep,
        target="http://127.0.0.1/echo",
        requested_qps=1000,
        connections=16,
        requested_duration_s=10,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        actual_duration_s=10,
        actual_qps=qps,
        requests=len(samples),
        errors=0,
        latency=summary_from_samples(samples),
        histogram=histogram_from_samples(samples),
        per_second_counts=per_second,
        valid=True,
    )


def latencies(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    # a right-skewed, loopback-like distribution around 0.5 ms
    rng = np.random.default_rng(seed)
    return (0.2 + rng.lognormal(mean=np.log(0.3), sigma=0.35, size=n)) * scale


def by_metric(diffs: list) -> dict:
    return {d.metric: d for d in diffs}


def test_a_ten_percent_shift_is_detected_with_one_repetition_each() -> None:
    base = [run(latencies(1, 5000))]
    slower = [run(latencies(2, 5000, scale=1.10))]
    diffs = by_metric(compare_groups(base, slower, seed=7))
    for metric in ("p50", "p90", "p99"):
        d = diffs[metric]
        assert d.has_interval, metric
        assert d.diff_low > 0, f"{metric}: interval {d.diff_low}..{d.diff_high} should exclude 0"
        assert 5 < d.rel_pct < 15, f"{metric}: {d.rel_pct:.1f}% is not near the planted 10%"
        assert judge(d, Thresholds(threshold_pct=5))[0] is Verdict.REGRESSION


def test_no_shift_is_not_flagged() -> None:
    base = [run(latencies(3, 5000))]
    same = [run(latencies(4, 5000))]
    diffs = by_metric(compare_groups(base, same, seed=7))
    for metric in ("p50", "p90", "p99"):  # p99.9 has 5 requests beyond it: not judged at all
        d = diffs[metric]
        assert d.has_interval
        assert d.diff_low <= 0 <= d.diff_high or abs(d.rel_pct) < 3, f"{d.metric}: {d.rel_pct:.2f}%"
        assert judge(d, Thresholds(threshold_pct=5))[0] is not Verdict.REGRESSION


def test_the_interval_is_narrower_with_more_requests() -> None:
    small = by_metric(compare_groups([run(latencies(5, 500))], [run(latencies(6, 500, 1.1))], seed=1))
    large = by_metric(compare_groups([run(latencies(5, 20000))], [run(latencies(6, 20000, 1.1))], seed=1))
    width = lambda d: d.diff_high - d.diff_low  # noqa: E731
    assert width(large["p50"]) < width(small["p50"]) / 2


def test_percentiles_without_enough_tail_samples_are_not_judged() -> None:
    diffs = by_metric(compare_groups([run(latencies(1, 600))], [run(latencies(2, 600, 3.0))], seed=1))
    # 600 requests leave 6 beyond p99 and 0.6 beyond p99.9: fewer than the 10 the estimate needs
    assert not diffs["p99"].has_interval and "not judged" in diffs["p99"].note
    assert not diffs["p99.9"].has_interval
    assert judge(diffs["p99.9"], Thresholds())[0] is Verdict.NOT_JUDGED
    assert diffs["p90"].has_interval  # 60 beyond p90


def test_repetitions_give_mann_whitney_and_a_rep_level_interval() -> None:
    base = [run(latencies(10 + i, 3000), rep=i + 1) for i in range(5)]
    slower = [run(latencies(20 + i, 3000, 1.10), rep=i + 1) for i in range(5)]
    diffs = by_metric(compare_groups(base, slower, seed=3))
    assert diffs["p50"].p_value is not None and diffs["p50"].p_value < 0.05
    assert diffs["p50"].diff_low > 0
    same = by_metric(
        compare_groups(base, [run(latencies(30 + i, 3000), rep=i + 1) for i in range(5)], seed=3)
    )
    assert same["p50"].p_value is not None and same["p50"].p_value > 0.05


def test_mann_whitney_needs_three_repetitions_per_side() -> None:
    assert mann_whitney([1.0, 2.0], [3.0, 4.0, 5.0]) is None
    assert mann_whitney([1.0, 1.1, 1.2], [2.0, 2.1, 2.2]) == pytest.approx(0.1, abs=1e-9)


def test_throughput_interval_needs_repetitions_or_per_second_counts() -> None:
    one_each = by_metric(compare_groups([run(latencies(1, 1000))], [run(latencies(2, 1000))], seed=1))
    assert not one_each[THROUGHPUT].has_interval
    assert judge(one_each[THROUGHPUT], Thresholds())[0] is Verdict.NOT_JUDGED

    base = [
        run(latencies(1, 1000), qps=1000, per_second=[1000 + d for d in (-8, 3, 5, -2, 0, 4, -6, 1, 2, -1)])
    ]
    drop = [
        run(latencies(2, 1000), qps=800, per_second=[800 + d for d in (5, -3, 2, 0, -4, 6, 1, -2, 3, -1)])
    ]
    d = by_metric(compare_groups(base, drop, seed=1))[THROUGHPUT]
    assert d.has_interval and d.diff_high < 0
    assert judge(d, Thresholds(threshold_pct=10))[0] is Verdict.REGRESSION


def test_histogram_resampling_reproduces_the_percentile_on_average() -> None:
    samples = latencies(42, 10000)
    hist = histogram_from_samples(samples)
    # 0.5%-wide buckets: the histogram's percentile is within 0.5% of the exact one
    assert hist.percentile(90) == pytest.approx(np.percentile(samples, 90), rel=0.005)
    boot = resample_histogram_percentiles(hist, [50.0, 99.0], 400, np.random.default_rng(0))
    assert boot.shape == (400, 2)
    assert np.median(boot[:, 0]) == pytest.approx(hist.percentile(50), rel=0.01)


def test_empty_histogram_has_no_percentile() -> None:
    assert np.isnan(Histogram().percentile(50))


def test_rank_bootstrap_matches_resampling_every_request() -> None:
    """The shortcut (binomial rank of the order statistic) against the naive bootstrap that re-draws all
    requests (a multinomial over the buckets): same intervals within sampling noise."""
    from meshproof.bench.model import interpolated_percentiles

    hist = histogram_from_samples(latencies(11, 3000))
    qs = [50.0, 90.0, 99.0]
    fast = resample_histogram_percentiles(hist, qs, 3000, np.random.default_rng(1))
    starts, ends, counts = hist.arrays()
    drawn = np.random.default_rng(2).multinomial(counts.sum(), counts / counts.sum(), size=3000)
    naive = np.stack([interpolated_percentiles(starts, ends, drawn, q) for q in qs], axis=1)
    for i in range(len(qs)):
        for level in (0.025, 0.5, 0.975):
            assert np.quantile(fast[:, i], level) == pytest.approx(np.quantile(naive[:, i], level), rel=0.01)
