"""Compare a current results file against a stored baseline and give each metric a verdict.

Verdicts (each row says why; the command's exit code is the overall one):
- **regressed**: worse by more than the relative threshold AND, for latency, by at least the minimum
  effect (`min_delta_ms`, default 0.05 ms: 10% of a 0.16 ms p50 is 16 µs, below a shared host's noise),
  AND the confidence interval of the difference (repetition-level, meshproof.bench.stats) excludes zero.
- **improved**: the same, the other way.
- **no change**: judged, and none of the above.
- **could not sustain the load**: current runs of a cell are invalid (below the requested rate, errors,
  a saturated load generator) where the baseline's were valid. That is not a latency regression: on a
  busy host it is often the host. It is reported, and exits with its own code.
- **not judged**: no interval (one repetition on a side), too few requests beyond a percentile, or no
  valid baseline run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from meshproof.bench.model import REPORTED_PERCENTILES, BenchmarkResults, CellKey, RunRecord, percentile_key
from meshproof.bench.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_TAIL_SAMPLES,
    THROUGHPUT,
    MetricDiff,
    compare_groups,
)

ALL_METRICS: tuple[str, ...] = (*(percentile_key(q) for q in REPORTED_PERCENTILES), THROUGHPUT)
DEFAULT_THRESHOLD_PCT = 10.0
DEFAULT_MIN_DELTA_MS = 0.05


class Verdict(StrEnum):
    REGRESSED = "regressed"
    IMPROVED = "improved"
    NO_CHANGE = "no change"
    UNSUSTAINED = "could not sustain the load"
    NOT_JUDGED = "not judged"


# One exit code per overall verdict (2 is the command's own "could not do its job").
EXIT_CODES: dict[Verdict, int] = {
    Verdict.NO_CHANGE: 0,
    Verdict.REGRESSED: 1,
    Verdict.UNSUSTAINED: 3,
    Verdict.NOT_JUDGED: 4,
    Verdict.IMPROVED: 5,
}
# The overall verdict is the first of these that any row has; "not judged" only when nothing was judged.
_PRECEDENCE = (Verdict.REGRESSED, Verdict.UNSUSTAINED, Verdict.IMPROVED, Verdict.NO_CHANGE)


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold_pct: float = Field(default=DEFAULT_THRESHOLD_PCT, ge=0)
    min_delta_ms: float = Field(default=DEFAULT_MIN_DELTA_MS, ge=0)
    metrics: tuple[str, ...] = ALL_METRICS
    min_tail_samples: int = Field(default=DEFAULT_MIN_TAIL_SAMPLES, ge=1)
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0, lt=1)


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

    def with_verdict(self, verdict: Verdict) -> list[Row]:
        return [r for r in self.rows if r.verdict is verdict]

    @property
    def regressions(self) -> list[Row]:
        return self.with_verdict(Verdict.REGRESSED)

    @property
    def verdict(self) -> Verdict:
        present = {r.verdict for r in self.rows}
        return next((v for v in _PRECEDENCE if v in present), Verdict.NOT_JUDGED)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

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
    sign = 1 if higher_is_worse else -1
    worse_pct = sign * diff.rel_pct  # > 0: worse
    worse_abs = sign * diff.diff
    worse_interval = sorted((sign * diff.diff_low, sign * diff.diff_high))
    digits = 3 if diff.unit == "ms" else 1
    moved = f"{diff.diff:+.{digits}f} {diff.unit} ({_signed(diff.rel_pct)}%)"
    interval = f"interval [{diff.diff_low:+.{digits}f}, {diff.diff_high:+.{digits}f}]"
    min_effect = thresholds.min_delta_ms if diff.unit == "ms" else 0.0
    rule = f"{thresholds.threshold_pct:g}%" + (f" and {min_effect:g} {diff.unit}" if min_effect else "")
    big_enough = abs(worse_pct) > thresholds.threshold_pct and abs(worse_abs) >= min_effect
    if big_enough and worse_abs > 0 and worse_interval[0] > 0:
        return Verdict.REGRESSED, f"{moved}, beyond {rule}, {interval} excludes 0"
    if big_enough and worse_abs < 0 and worse_interval[1] < 0:
        return Verdict.IMPROVED, f"{moved}, beyond {rule}, {interval} excludes 0"
    if big_enough:
        return Verdict.NO_CHANGE, f"{moved} but the {interval} includes 0"
    if abs(worse_pct) <= thresholds.threshold_pct:
        return Verdict.NO_CHANGE, f"{moved}, within the {thresholds.threshold_pct:g}% threshold"
    return Verdict.NO_CHANGE, f"{moved}, below the {min_effect:g} {diff.unit} minimum effect"


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
        rows.extend(compare_cell(cell, base_runs, cur_runs, thresholds))
    return Comparison(
        baseline=str(baseline_name),
        current=str(current_name),
        thresholds=thresholds,
        rows=rows,
        only_in_baseline=[c for c in base_cells if c not in cur_cells],
        only_in_current=[c for c in cur_cells if c not in base_cells],
    )


def compare_cell(
    cell: CellKey,
    base_runs: list[RunRecord],
    cur_runs: list[RunRecord],
    thresholds: Thresholds,
    *,
    paired: bool = False,
) -> list[Row]:
    """The rows of one cell: validity first (an invalid current run is "could not sustain the load",
    never a regression), then every selected metric of the valid runs."""
    base_valid = [r for r in base_runs if r.valid]
    cur_valid = [r for r in cur_runs if r.valid]
    if not base_valid:
        return [Row(cell, "*", Verdict.NOT_JUDGED, "the baseline has no valid run of this cell")]
    rows: list[Row] = []
    cur_invalid = len(cur_runs) - len(cur_valid)
    base_invalid_share = (len(base_runs) - len(base_valid)) / len(base_runs)
    if cur_invalid and cur_invalid / len(cur_runs) > base_invalid_share:
        reasons = "; ".join(sorted({reason for r in cur_runs for reason in r.invalid_reasons}))
        rows.append(
            Row(
                cell,
                "*",
                Verdict.UNSUSTAINED,
                f"{cur_invalid} of {len(cur_runs)} current runs invalid: {reasons}",
            )
        )
    if not cur_valid:
        return rows
    diffs = compare_groups(
        base_valid,
        cur_valid,
        confidence=thresholds.confidence,
        min_tail_samples=thresholds.min_tail_samples,
        paired=paired,
    )
    for diff in diffs:
        if diff.metric in thresholds.metrics:
            verdict, reason = judge(diff, thresholds)
            rows.append(Row(cell, diff.metric, verdict, reason, diff))
    return rows
