"""Compare a current results file against a stored baseline and decide whether anything regressed.

A metric regresses when it moved the wrong way by more than the threshold AND the bootstrap interval of
the difference excludes zero (and, for latency, the move is at least `min_delta_ms`). A cell whose
current runs are all invalid while the baseline's were valid regresses too: the system no longer
sustains the load the baseline sustained. Metrics without an interval are shown, never judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from meshproof.bench.model import REPORTED_PERCENTILES, BenchmarkResults, CellKey, percentile_key
from meshproof.bench.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_TAIL_SAMPLES,
    DEFAULT_RESAMPLES,
    THROUGHPUT,
    MetricDiff,
    compare_groups,
)

ALL_METRICS: tuple[str, ...] = (*(percentile_key(q) for q in REPORTED_PERCENTILES), THROUGHPUT)


class Verdict(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "no significant change"
    NOT_JUDGED = "not judged"


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold_pct: float = Field(default=10.0, ge=0)
    min_delta_ms: float = Field(default=0.0, ge=0)
    metrics: tuple[str, ...] = ALL_METRICS
    min_tail_samples: int = Field(default=DEFAULT_MIN_TAIL_SAMPLES, ge=1)
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0, lt=1)
    resamples: int = Field(default=DEFAULT_RESAMPLES, ge=100)
    seed: int = 0


@dataclass(frozen=True)
class Row:
    cell: CellKey
    metric: str
    verdict: Verdict
    reason: str
    diff: MetricDiff | None = None


@dataclass(frozen=True)
class Comparison:
    baseline: str
    current: str
    thresholds: Thresholds
    rows: list[Row]
    only_in_baseline: list[CellKey] = field(default_factory=list)
    only_in_current: list[CellKey] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict is Verdict.REGRESSION]

    def by_metric(self) -> dict[str, list[Row]]:
        grouped: dict[str, list[Row]] = {}
        for row in self.rows:
            grouped.setdefault(row.metric, []).append(row)
        return grouped


def judge(diff: MetricDiff, thresholds: Thresholds) -> tuple[Verdict, str]:
    if not diff.has_interval:
        return Verdict.NOT_JUDGED, diff.note or "no interval"
    assert diff.diff_low is not None and diff.diff_high is not None
    higher_is_worse = diff.metric != THROUGHPUT
    worse_pct = diff.rel_pct if higher_is_worse else -diff.rel_pct
    worse_low = diff.diff_low if higher_is_worse else -diff.diff_high  # lower end of "how much worse"
    better_high = diff.diff_high if higher_is_worse else -diff.diff_low
    big_enough = diff.unit != "ms" or abs(diff.diff) >= thresholds.min_delta_ms
    if worse_pct > thresholds.threshold_pct and worse_low > 0 and big_enough:
        return Verdict.REGRESSION, (
            f"{diff.metric} {_signed(diff.rel_pct)}% "
            f"(beyond {thresholds.threshold_pct:g}%, interval excludes 0)"
        )
    if worse_pct < -thresholds.threshold_pct and better_high < 0 and big_enough:
        return Verdict.IMPROVEMENT, f"{diff.metric} {_signed(diff.rel_pct)}%"
    if worse_pct > thresholds.threshold_pct and big_enough:
        return Verdict.UNCHANGED, f"{_signed(diff.rel_pct)}% but the interval includes 0"
    return Verdict.UNCHANGED, f"{_signed(diff.rel_pct)}% (threshold {thresholds.threshold_pct:g}%)"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


def compare_results(
    baseline: BenchmarkResults,
    current: BenchmarkResults,
    thresholds: Thresholds,
    *,
    baseline_name: str | Path = "baseline",
    current_name: str | Path = "current",
) -> Comparison:
    base_cells = baseline.cells()
    cur_cells = current.cells()
    rows: list[Row] = []
    for cell, cur_runs in cur_cells.items():
        base_runs = base_cells.get(cell)
        if base_runs is None:
            continue
        base_valid = [r for r in base_runs if r.valid]
        cur_valid = [r for r in cur_runs if r.valid]
        if not base_valid:
            rows.append(Row(cell, "*", Verdict.NOT_JUDGED, "the baseline has no valid run of this cell"))
            continue
        if not cur_valid:
            reasons = "; ".join(sorted({reason for r in cur_runs for reason in r.invalid_reasons}))
            rows.append(Row(cell, "*", Verdict.REGRESSION, f"no valid current run: {reasons}"))
            continue
        diffs = compare_groups(
            base_valid,
            cur_valid,
            resamples=thresholds.resamples,
            confidence=thresholds.confidence,
            seed=thresholds.seed,
            min_tail_samples=thresholds.min_tail_samples,
        )
        for diff in diffs:
            if diff.metric not in thresholds.metrics:
                continue
            verdict, reason = judge(diff, thresholds)
            rows.append(Row(cell, diff.metric, verdict, reason, diff))
    return Comparison(
        baseline=str(baseline_name),
        current=str(current_name),
        thresholds=thresholds,
        rows=rows,
        only_in_baseline=[c for c in base_cells if c not in cur_cells],
        only_in_current=[c for c in cur_cells if c not in base_cells],
    )
