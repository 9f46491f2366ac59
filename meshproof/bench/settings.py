"""The cluster benchmark's settings from the environment, validated before anything is provisioned.

MESHPROOF_BENCH_PROFILE (a profile name in load/profiles/ or a YAML path; default `quick`),
MESHPROOF_BENCH_BASELINE (a results dir or benchmark.json to compare against; optional) and
MESHPROOF_BENCH_THRESHOLD_PCT (regression threshold in percent; default 10), MESHPROOF_BENCH_SCALE_PODS
(the scale profile's pod counts, comma-separated; optional). Every bad setting is
reported, one line each, at once: a typo in the profile used to surface as one traceback per benchmark
test, and a missing baseline only in the last test, after a cluster and the mesh had been provisioned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshproof.bench.compare import DEFAULT_THRESHOLD_PCT
from meshproof.bench.model import ResultsError, load_results
from meshproof.bench.plan import BenchPlan, PlanError, load_plan
from meshproof.bench.scale import ScaleCountsError, scale_counts
from meshproof.bench.session import BASELINE_ENV, PROFILE_ENV, SCALE_PODS_ENV, THRESHOLD_ENV

DEFAULT_PROFILE = "quick"


class BenchSettingsError(Exception):
    """One or more bad benchmark settings; `problems` holds one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class BenchSettings:
    plan: BenchPlan
    baseline: Path | None
    threshold_pct: float


def bench_settings(env: Mapping[str, str] | None = None) -> BenchSettings:
    """The validated settings; raises BenchSettingsError naming every bad one."""
    env = os.environ if env is None else env
    problems: list[str] = []
    plan: BenchPlan | None = None
    try:
        plan = load_plan(env.get(PROFILE_ENV) or DEFAULT_PROFILE)
    except PlanError as exc:
        problems.append(f"{PROFILE_ENV}: {_one_line(exc)}")
    baseline = Path(env[BASELINE_ENV]).expanduser() if env.get(BASELINE_ENV) else None
    if baseline is not None:
        try:
            load_results(baseline)
        except ResultsError as exc:
            problems.append(f"{BASELINE_ENV}: {_one_line(exc)}")
    threshold = _threshold(env.get(THRESHOLD_ENV), problems)
    if env.get(SCALE_PODS_ENV):
        try:
            scale_counts((), "any", env[SCALE_PODS_ENV])
        except ScaleCountsError as exc:
            problems.append(f"{SCALE_PODS_ENV}: {exc}")
    if problems or plan is None:
        raise BenchSettingsError(problems)
    return BenchSettings(plan=plan, baseline=baseline, threshold_pct=threshold)


def _threshold(raw: str | None, problems: list[str]) -> float:
    if raw is None or raw.strip() == "":
        return DEFAULT_THRESHOLD_PCT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        problems.append(f"{THRESHOLD_ENV}: '{raw}' is not a percentage (a number >= 0, e.g. 10)")
    return value


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
