"""`meshproof bench calibrate`: what this machine, with these settings, can resolve.

A precise local delay server (meshproof.bench.delayserver, busy-wait) serves one reference port with no
delay and one port per planted shift (default 0, 0.05, 0.1, 0.2 ms; the 0 shift is an unchanged rerun).
`bench local` loads them all with fortio, arms interleaved in a random order every repetition. The
repetitions are then cut into consecutive blocks of `group_size` (the default repetitions of a real
comparison), and every block is one trial: the shift arm against the reference, judged exactly as
`bench local` (paired) and `bench compare` (unpaired, Welch) judge it with the given thresholds.

Reported per shift and percentile: how many of the judged trials were flagged "regressed", as k/n with
a 95% Clopper-Pearson upper bound (a handful of trials cannot show a rate of 0; for the 0 shift every
verdict other than "no change", "improved" too, is a false flag), the shift actually measured over all
repetitions, and the smallest shift flagged in at least `RESOLVED_RATE` of the judged trials. A trial is
judged on its valid runs (an invalid run, e.g. fortio falling behind on a busy host, is left out as
`compare` leaves it out) and is "unsustained" when a side keeps fewer than two. Trials in one session are
closer in time than a real baseline and rerun usually are: the unpaired rate here is a lower bound for
a baseline taken days ago.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import beta

from meshproof.bench.compare import Thresholds, Verdict, compare_cell
from meshproof.bench.delayserver import serving_in_process
from meshproof.bench.local import LocalArm, LocalBenchSpec, run_local
from meshproof.bench.model import BenchmarkResults, CellKey, RunRecord
from meshproof.bench.stats import DEFAULT_REPETITIONS, MIN_REPS_FOR_INTERVAL
from meshproof.bench.validity import ValidityLimits

DEFAULT_SHIFTS_MS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
CALIBRATED_PERCENTILES = ("p50", "p90", "p99")
REFERENCE_ARM = "reference"
RESOLVED_RATE = 0.8
CALIBRATION_FILE = "calibration.json"
MODES = ("paired", "unpaired")
BOUND_CONFIDENCE = 0.95


def shift_arm(shift_ms: float) -> str:
    return f"shift+{shift_ms:g}ms"


@dataclass(frozen=True)
class CalibrationSpec:
    qps: float = 1000.0
    connections: int = 16
    # 10 s: fortio's achieved rate on a short run is structurally low (-uniform start offsets, whole calls
    # per connection: ~0.5% at 5 s), which leaves a busy host little room under the 99% validity rule
    duration_s: float = 10.0
    warmup_s: float = 1.0
    repetitions: int = 12
    group_size: int = DEFAULT_REPETITIONS
    shifts_ms: tuple[float, ...] = DEFAULT_SHIFTS_MS
    thresholds: Thresholds = field(default_factory=Thresholds)
    limits: ValidityLimits = field(default_factory=ValidityLimits)
    seed: int = 0

    def trials(self) -> int:
        return self.repetitions // self.group_size


@dataclass(frozen=True)
class ShiftRow:
    shift_ms: float
    trials: int
    unsustained: int  # trials left with fewer than 2 valid runs on a side
    measured_ms: dict[str, float]  # mean per-repetition difference to the reference, per percentile
    flagged: dict[str, dict[str, int]]  # mode -> percentile -> trials judged "regressed"
    not_judged: dict[str, dict[str, int]]

    def judged(self, mode: str, metric: str) -> int:
        return self.trials - self.unsustained - self.not_judged[mode][metric]

    def rate(self, mode: str, metric: str) -> float | None:
        """Share of the judged trials flagged (None: none judged)."""
        judged = self.judged(mode, metric)
        return self.flagged[mode][metric] / judged if judged > 0 else None

    def upper_bound(self, mode: str, metric: str) -> float | None:
        """One-sided 95% Clopper-Pearson upper bound on the flag rate (None: none judged)."""
        judged = self.judged(mode, metric)
        return upper_bound(self.flagged[mode][metric], judged) if judged > 0 else None


def upper_bound(k: int, n: int, confidence: float = BOUND_CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound for k successes in n trials (0 of 4 -> 52.7%)."""
    if k >= n:
        return 1.0
    return float(beta.ppf(confidence, k + 1, n - k))


@dataclass(frozen=True)
class Calibration:
    spec: dict[str, object]
    rows: list[ShiftRow]

    def false_positive(self, mode: str, metric: str) -> float | None:
        zero = next((r for r in self.rows if r.shift_ms == 0), None)
        return zero.rate(mode, metric) if zero else None

    def false_positive_bound(self, mode: str, metric: str) -> float | None:
        zero = next((r for r in self.rows if r.shift_ms == 0), None)
        return zero.upper_bound(mode, metric) if zero else None

    def smallest_resolved(self, mode: str, metric: str) -> float | None:
        for row in sorted(self.rows, key=lambda r: r.shift_ms):
            rate = row.rate(mode, metric)
            if row.shift_ms > 0 and rate is not None and rate >= RESOLVED_RATE:
                return row.shift_ms
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "schema": "meshproof.io/benchmark-calibration",
            "version": 1,
            "spec": self.spec,
            "resolved_rate": RESOLVED_RATE,
            "rows": [asdict(r) for r in self.rows],
            "false_positive_rate": {
                m: {p: self.false_positive(m, p) for p in CALIBRATED_PERCENTILES} for m in MODES
            },
            "false_positive_upper_bound": {
                m: {p: self.false_positive_bound(m, p) for p in CALIBRATED_PERCENTILES} for m in MODES
            },
            "bound_confidence": BOUND_CONFIDENCE,
            "smallest_resolved_shift_ms": {
                m: {p: self.smallest_resolved(m, p) for p in CALIBRATED_PERCENTILES} for m in MODES
            },
        }


def _blocks(runs: Sequence[RunRecord], group_size: int, trials: int) -> list[list[RunRecord]]:
    return [[r for r in runs if k * group_size < r.repetition <= (k + 1) * group_size] for k in range(trials)]


def analyse(results: BenchmarkResults, spec: CalibrationSpec) -> Calibration:
    """Trials and rates from the runs of one calibration session (pure: unit-tested on synthetic runs)."""
    by_arm: dict[str, list[RunRecord]] = {}
    for run in results.runs:
        by_arm.setdefault(run.arm, []).append(run)
    reference = by_arm.get(REFERENCE_ARM, [])
    trials = spec.trials()
    ref_blocks = _blocks(reference, spec.group_size, trials)
    rows: list[ShiftRow] = []
    for shift in spec.shifts_ms:
        arm_runs = by_arm.get(shift_arm(shift), [])
        flagged = {m: dict.fromkeys(CALIBRATED_PERCENTILES, 0) for m in MODES}
        not_judged = {m: dict.fromkeys(CALIBRATED_PERCENTILES, 0) for m in MODES}
        unsustained = 0
        for ref_block, arm_block in zip(ref_blocks, _blocks(arm_runs, spec.group_size, trials), strict=True):
            # judged on the valid runs, as compare would; a side left with fewer than 2 cannot be
            ref_valid = [r for r in ref_block if r.valid]
            arm_valid = [r for r in arm_block if r.valid]
            if min(len(ref_valid), len(arm_valid)) < MIN_REPS_FOR_INTERVAL:
                unsustained += 1
                continue
            cell = CellKey(
                tool="fortio", arm=shift_arm(shift), requested_qps=spec.qps, connections=spec.connections
            )
            for mode in MODES:
                verdicts = compare_cell(cell, ref_valid, arm_valid, spec.thresholds, paired=mode == "paired")
                for row in verdicts:
                    if row.metric in CALIBRATED_PERCENTILES:
                        # an unchanged rerun judged anything but "no change" (improved too) is a false flag
                        if shift == 0:
                            flagged[mode][row.metric] += row.verdict in (Verdict.REGRESSED, Verdict.IMPROVED)
                        else:
                            flagged[mode][row.metric] += row.verdict is Verdict.REGRESSED
                        not_judged[mode][row.metric] += row.verdict is Verdict.NOT_JUDGED
        rows.append(
            ShiftRow(
                shift_ms=shift,
                trials=trials,
                unsustained=unsustained,
                measured_ms=_measured(reference, arm_runs),
                flagged=flagged,
                not_judged=not_judged,
            )
        )
    return Calibration(spec=_spec_facts(spec), rows=rows)


def _measured(reference: Sequence[RunRecord], arm_runs: Sequence[RunRecord]) -> dict[str, float]:
    """Mean difference to the reference over the repetitions valid on both sides (did the server plant
    what it was asked to?)."""
    ref = {r.repetition: r for r in reference if r.valid}
    pairs = [(ref[r.repetition], r) for r in arm_runs if r.valid and r.repetition in ref]
    out: dict[str, float] = {}
    for metric in CALIBRATED_PERCENTILES:
        q = float(metric[1:])
        if pairs:
            out[metric] = float(
                np.mean([a.histogram.percentile(q) - b.histogram.percentile(q) for b, a in pairs])
            )
    return out


def _spec_facts(spec: CalibrationSpec) -> dict[str, object]:
    return {
        "qps": spec.qps,
        "connections": spec.connections,
        "duration_s": spec.duration_s,
        "warmup_s": spec.warmup_s,
        "repetitions": spec.repetitions,
        "group_size": spec.group_size,
        "trials": spec.trials(),
        "shifts_ms": list(spec.shifts_ms),
        "threshold_pct": spec.thresholds.threshold_pct,
        "min_delta_ms": spec.thresholds.min_delta_ms,
        "confidence": spec.thresholds.confidence,
        "min_qps_ratio": spec.limits.min_qps_ratio,
        "seed": spec.seed,
    }


def run_calibration(
    spec: CalibrationSpec, output: Path, *, progress: Callable[[str], None] | None = None
) -> tuple[Calibration, BenchmarkResults]:
    """Start the delay server, load every arm, analyse; writes benchmark.json and calibration.json."""
    if spec.trials() < 1:
        raise ValueError(
            f"--repetitions {spec.repetitions} is fewer than one trial of {spec.group_size} repetitions"
        )
    delays = [0.0, *spec.shifts_ms]
    with serving_in_process(delays) as urls:
        arms = (
            LocalArm(REFERENCE_ARM, f"{urls[0]}/echo"),
            *(LocalArm(shift_arm(s), f"{u}/echo") for s, u in zip(spec.shifts_ms, urls[1:], strict=True)),
        )
        results = run_local(
            LocalBenchSpec(
                arms=arms,
                tool="fortio",
                qps=spec.qps,
                connections=spec.connections,
                duration_s=spec.duration_s,
                repetitions=spec.repetitions,
                warmup_s=spec.warmup_s,
                limits=spec.limits,
                seed=spec.seed,
            ),
            output,
            progress=progress,
        )
    calibration = analyse(results, spec)
    (output / CALIBRATION_FILE).write_text(
        json.dumps(calibration.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return calibration, results


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.0f}%"


def _kn(row: ShiftRow, mode: str, metric: str) -> str:
    """k/n flagged with the 95% upper bound: "0/4 (<=53%)"."""
    judged = row.judged(mode, metric)
    if judged <= 0:
        return "n/a"
    return f"{row.flagged[mode][metric]}/{judged} (<={_pct(row.upper_bound(mode, metric))})"


def table(calibration: Calibration) -> str:
    """The calibration as a Markdown table (the console prints the same)."""
    spec = calibration.spec
    lines = [
        f"fortio {spec['qps']:g} req/s, {spec['connections']} connections, {spec['duration_s']:g} s per run "
        f"(+{spec['warmup_s']:g} s warm-up), {spec['repetitions']} repetitions per arm = "
        f"{spec['trials']} trials of {spec['group_size']}; rule: >{spec['threshold_pct']:g}% and "
        f">= {spec['min_delta_ms']:g} ms, {100 * float(spec['confidence']):g}% interval excludes 0",  # type: ignore[arg-type]
        "",
        "| planted shift (ms) | measured p50 / p90 / p99 (ms) "
        "| flagged k/n (95% upper bound) p50 / p90 / p99, paired (bench local A/B) "
        "| flagged k/n (95% upper bound) p50 / p90 / p99, unpaired (bench compare) | trials (unsustained) |",
        "| ---: | --- | --- | --- | ---: |",
    ]
    for row in calibration.rows:
        measured = " / ".join(
            f"{row.measured_ms[p]:+.3f}" if p in row.measured_ms else "n/a" for p in CALIBRATED_PERCENTILES
        )
        rates = [" / ".join(_kn(row, m, p) for p in CALIBRATED_PERCENTILES) for m in MODES]
        lines.append(
            f"| {row.shift_ms:g} | {measured} | {rates[0]} | {rates[1]} | {row.trials} ({row.unsustained}) |"
        )
    lines.append("")
    zero = next((r for r in calibration.rows if r.shift_ms == 0), None)
    for mode in MODES:
        fp = ", ".join(f"{p} {_kn(zero, mode, p) if zero else 'n/a'}" for p in CALIBRATED_PERCENTILES)
        resolved = ", ".join(
            f"{p} {_shift(calibration.smallest_resolved(mode, p))}" for p in CALIBRATED_PERCENTILES
        )
        lines.append(
            f"- {mode}: false-positive rate (0 shift judged other than no change; k/n, 95% upper bound) "
            f"{fp}; smallest shift flagged in >= {100 * RESOLVED_RATE:.0f}% of trials: {resolved}"
        )
    return "\n".join(lines)


def _shift(value: float | None) -> str:
    return "none of those planted" if value is None else f"{value:g} ms"
