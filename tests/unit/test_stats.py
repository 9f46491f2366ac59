"""Statistics on synthetic data with a known answer (numpy, fixed seeds, well under a second each).

The synthetic model is the one issue 12 measured: each repetition's percentile moves with the run (a
run-level drift far larger than the request-level noise inside a run), so the repetition is the unit.
Checked: the false-positive rate over many no-change trials is near the nominal 5%, the interval covers
the true difference about 95% of the time, a planted 0.1 ms shift is found, one repetition is not
judged, the relative interval cannot blow up, an invalid current run is "could not sustain the load".
"""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data.bench_runs import run_record

from meshproof.bench.compare import EXIT_CODES, Thresholds, Verdict, compare_cell, judge
from meshproof.bench.histogram import histogram_from_samples, summary_from_samples
from meshproof.bench.model import Bucket, CellKey, Histogram, LatencySummary, RunRecord
from meshproof.bench.stats import (
    THROUGHPUT,
    compare_groups,
    mann_whitney,
    paired_interval,
    welch_interval,
)

CELL = CellKey(tool="fortio", arm="sidecar", requested_qps=1000, connections=16)


def run(
    samples: np.ndarray,
    rep: int = 1,
    qps: float = 1000.0,
    valid: bool = True,
    histogram: Histogram | None = None,
) -> RunRecord:
    return run_record(samples, rep=rep, actual_qps=qps, valid=valid, histogram=histogram)


def latencies(rng: np.random.Generator, n: int, shift_ms: float = 0.0, drift: float = 0.03) -> np.ndarray:
    """One run: a right-skewed loopback-like distribution around 0.3 ms, times a run-level drift."""
    run_factor = 1 + rng.normal(0, drift)
    return (0.1 + rng.lognormal(mean=np.log(0.2), sigma=0.35, size=n) + shift_ms) * run_factor


def group(seed: int, reps: int, shift_ms: float = 0.0, n: int = 3000, qps: float = 1000.0) -> list[RunRecord]:
    rng = np.random.default_rng(seed)
    return [run(latencies(rng, n, shift_ms), rep=i + 1, qps=qps + rng.normal(0, 1)) for i in range(reps)]


def by_metric(diffs: list) -> dict:
    return {d.metric: d for d in diffs}


def _trial_values(seed: int, trials: int, shift_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """p50 per repetition for `trials` independent comparisons of 3 vs 3 repetitions (300 requests each)."""
    rng = np.random.default_rng(seed)
    shape = (trials, 3, 300)

    def side(shift: float) -> np.ndarray:
        samples = 0.1 + rng.lognormal(np.log(0.2), 0.35, size=shape) + shift
        return np.percentile(samples, 50, axis=2) * (1 + rng.normal(0, 0.03, size=(trials, 3)))

    return side(0.0), side(shift_ms)


def test_false_positive_rate_over_many_unchanged_trials_is_near_nominal() -> None:
    base, cur = _trial_values(seed=1, trials=1200, shift_ms=0.0)
    intervals = [welch_interval(b, c, 0.95) for b, c in zip(base, cur, strict=True)]
    excluded = np.mean([lo > 0 or hi < 0 for lo, hi in intervals])  # type: ignore[misc]
    assert 0.025 <= excluded <= 0.075, f"interval excluded 0 in {excluded:.1%} of no-change trials"


def test_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    base, cur = _trial_values(seed=2, trials=1200, shift_ms=0.1)
    intervals = [welch_interval(b, c, 0.95) for b, c in zip(base, cur, strict=True)]
    covered = np.mean([lo <= 0.1 <= hi for lo, hi in intervals])  # type: ignore[misc]
    assert 0.925 <= covered <= 0.975, f"coverage {covered:.1%}"


def test_a_planted_tenth_of_a_millisecond_is_detected_with_three_repetitions() -> None:
    base, cur = _trial_values(seed=3, trials=500, shift_ms=0.1)
    found = np.mean([welch_interval(b, c)[0] > 0 for b, c in zip(base, cur, strict=True)])  # type: ignore[index]
    assert found >= 0.9, f"0.1 ms found in only {found:.0%} of trials"


def test_within_run_noise_alone_does_not_make_an_interval() -> None:
    """Issue 12: with one repetition the old interval was request-level (+-0.001 ms) and excluded zero for
    unchanged runs. One repetition now gives no interval and is not judged."""
    diffs = by_metric(compare_groups(group(1, 1), group(2, 1)))
    for metric in ("p50", "p90", "p99", THROUGHPUT):
        assert not diffs[metric].has_interval, metric
        verdict, reason = judge(diffs[metric], Thresholds())
        assert verdict is Verdict.NOT_JUDGED and "repetition" in reason


def test_unchanged_repetitions_are_not_flagged_and_a_planted_shift_is() -> None:
    base = group(10, 3)
    same = by_metric(compare_groups(base, group(11, 3)))
    for metric in ("p50", "p90", "p99"):
        assert judge(same[metric], Thresholds())[0] is Verdict.NO_CHANGE, metric
    slower = by_metric(compare_groups(base, group(12, 3, shift_ms=0.1)))
    d = slower["p50"]
    assert d.diff_low > 0 and d.diff == pytest.approx(0.1, abs=0.04)
    assert judge(d, Thresholds())[0] is Verdict.REGRESSED
    faster = by_metric(compare_groups(group(12, 3, shift_ms=0.1), base))
    assert judge(faster["p50"], Thresholds())[0] is Verdict.IMPROVED


def test_the_minimum_effect_keeps_a_tiny_significant_move_at_no_change() -> None:
    base = group(20, 5, n=20000)
    # +0.03 ms on a ~0.3 ms p50 is +10-15%: beyond the relative threshold, below the 0.05 ms minimum
    d = by_metric(compare_groups(base, group(21, 5, shift_ms=0.03, n=20000)))["p50"]
    verdict, reason = judge(d, Thresholds(threshold_pct=5))
    assert verdict is Verdict.NO_CHANGE and "minimum effect" in reason, reason
    assert judge(d, Thresholds(threshold_pct=5, min_delta_ms=0.0))[0] is Verdict.REGRESSED


def test_relative_interval_is_the_absolute_one_over_the_baseline() -> None:
    """Issue 12: a report showed [-36.6, +11 390.6] % (a resampled baseline near zero). The relative
    interval is now the absolute one scaled by the baseline, so it cannot explode."""
    base = [run(np.full(2000, v), rep=i + 1) for i, v in enumerate((1.0, 1.0, 0.01))]
    cur = [run(np.full(2000, v), rep=i + 1) for i, v in enumerate((1.0, 1.02, 0.98))]
    d = by_metric(compare_groups(base, cur))["p50"]
    assert d.rel_low_pct == pytest.approx(100 * d.diff_low / d.baseline)
    assert d.rel_high_pct == pytest.approx(100 * d.diff_high / d.baseline)
    assert abs(d.rel_high_pct) < 1000


def test_paired_repetitions_cancel_drift_shared_by_both_arms() -> None:
    rng = np.random.default_rng(5)
    drift = rng.normal(0, 0.05, size=4)  # the host's state per repetition, shared by both arms
    base = [0.3 + d for d in drift]
    cur = [0.35 + d + rng.normal(0, 0.002) for d in drift]
    lo, hi = paired_interval(base, cur)  # type: ignore[misc]
    assert lo > 0 and hi - lo < 0.02
    wlo, whi = welch_interval(base, cur)  # type: ignore[misc]
    assert wlo < 0 < whi  # unpaired, the shared drift swamps the 0.05 ms


def test_compare_groups_pairs_by_repetition_and_says_when_it_cannot() -> None:
    paired = by_metric(compare_groups(group(1, 3), group(2, 3), paired=True))
    assert paired["p50"].paired and "pair" not in paired["p50"].note
    # an invalid run leaves a hole: the other side's run of that repetition is left out, and said so
    holed = by_metric(compare_groups(group(1, 3), group(2, 2), paired=True))
    assert (
        holed["p50"].paired
        and holed["p50"].baseline_reps == 2
        and "1 run(s) without a partner" in holed["p50"].note
    )
    # fewer than two pairs: unpaired (Welch), and said so
    apart = group(2, 3)
    apart = [r.model_copy(update={"repetition": r.repetition + 2}) for r in apart]  # reps 3, 4, 5
    unpaired = by_metric(compare_groups(group(1, 3), apart, paired=True))
    assert not unpaired["p50"].paired and "Welch" in unpaired["p50"].note
    assert unpaired["p50"].has_interval


def test_a_delta_below_the_bucket_width_is_warned_about() -> None:
    # fortio-like tail: p99 falls in a 0.5 ms-wide bucket
    coarse = Histogram(
        buckets=[Bucket(start_ms=0.2, end_ms=0.3, count=9000), Bucket(start_ms=1.0, end_ms=1.5, count=1000)]
    )
    shifted = Histogram(
        buckets=[Bucket(start_ms=0.2, end_ms=0.3, count=9000), Bucket(start_ms=1.0, end_ms=1.5, count=1000)]
    )
    samples = np.full(10000, 0.25)
    base = [run(samples, rep=i + 1, histogram=coarse) for i in range(3)]
    cur = [run(samples, rep=i + 1, histogram=shifted) for i in range(3)]
    d = by_metric(compare_groups(base, cur))
    assert any("0.500 ms histogram bucket" in w for w in d["p99"].warnings), d["p99"].warnings
    assert coarse.bucket_width_at(50) == pytest.approx(0.1)
    wide = by_metric(compare_groups(group(1, 3), group(2, 3, shift_ms=1.0)))
    assert not wide["p50"].warnings  # 1 ms on 0.5%-wide buckets is resolved


def test_percentiles_without_enough_tail_samples_are_not_judged() -> None:
    diffs = by_metric(compare_groups(group(1, 3, n=600), group(2, 3, n=600, shift_ms=1.0)))
    # 600 requests leave 6 beyond p99 and 0.6 beyond p99.9: fewer than the 10 the estimate needs
    assert not diffs["p99"].has_interval and "not judged" in diffs["p99"].note
    assert judge(diffs["p99.9"], Thresholds())[0] is Verdict.NOT_JUDGED
    assert diffs["p90"].has_interval  # 60 beyond p90


def test_an_invalid_current_run_is_could_not_sustain_the_load_not_a_regression() -> None:
    base = group(1, 3)
    rng = np.random.default_rng(9)
    invalid = [run(latencies(rng, 3000), rep=i + 1, qps=700, valid=False) for i in range(3)]
    rows = compare_cell(CELL, base, invalid, Thresholds())
    assert [r.verdict for r in rows] == [Verdict.UNSUSTAINED]
    assert "3 of 3 current runs invalid" in rows[0].reason and "70.0%" in rows[0].reason
    mixed = compare_cell(CELL, base, [*group(2, 3), invalid[0]], Thresholds())
    assert mixed[0].verdict is Verdict.UNSUSTAINED and "1 of 4" in mixed[0].reason
    assert all(r.verdict is not Verdict.REGRESSED for r in mixed)
    none_valid_base = compare_cell(CELL, invalid, base, Thresholds())
    assert [r.verdict for r in none_valid_base] == [Verdict.NOT_JUDGED]


def test_each_verdict_has_its_own_exit_code() -> None:
    assert len(set(EXIT_CODES.values())) == len(Verdict)
    assert EXIT_CODES[Verdict.NO_CHANGE] == 0 and 2 not in EXIT_CODES.values()


def test_throughput_is_judged_from_repetitions() -> None:
    base = group(1, 3, qps=1000)
    d = by_metric(compare_groups(base, group(2, 3, qps=800)))[THROUGHPUT]
    assert d.has_interval and d.diff_high < 0
    assert judge(d, Thresholds())[0] is Verdict.REGRESSED
    assert (
        judge(by_metric(compare_groups(base, group(3, 3)))[THROUGHPUT], Thresholds())[0] is Verdict.NO_CHANGE
    )


def test_mann_whitney_needs_three_repetitions_per_side() -> None:
    assert mann_whitney([1.0, 2.0], [3.0, 4.0, 5.0]) is None
    assert mann_whitney([1.0, 1.1, 1.2], [2.0, 2.1, 2.2]) == pytest.approx(0.1, abs=1e-9)


def test_histogram_percentile_is_within_a_bucket_of_the_exact_one() -> None:
    samples = latencies(np.random.default_rng(42), 10000)
    hist = histogram_from_samples(samples)
    # 0.5%-wide buckets: the histogram's percentile is within 0.5% of the exact one
    assert hist.percentile(90) == pytest.approx(np.percentile(samples, 90), rel=0.005)
    assert hist.bucket_width_at(90) == pytest.approx(hist.percentile(90) * 0.005, rel=0.01)


def test_empty_histogram_has_no_percentile() -> None:
    assert np.isnan(Histogram().percentile(50))
    assert np.isnan(Histogram().bucket_width_at(50))


def test_summary_has_no_percentiles_without_samples() -> None:
    assert summary_from_samples(np.array([])) == LatencySummary(
        min_ms=None, mean_ms=None, max_ms=None, percentiles_ms={}
    )
