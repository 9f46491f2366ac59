"""The order of a benchmark: repetitions, and inside each the load points; at each point every arm in a
fresh random order, so slow drift of a shared cluster spreads over the arms instead of landing on one
(perf-anchors §7.8), and an arm is always compared with a no-mesh run taken minutes, not hours, apart.
Each measurement is preceded by a discarded warm-up at the same point (perf-anchors §5).

The executor does the work (meshproof.bench.cluster.ClusterExecutor on a cluster, a fake in the tests);
this module only decides what runs when and collects what comes back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from meshproof.bench.model import ResourceUsage, RunRecord
from meshproof.bench.plan import BenchPlan, LoadPoint, arm_order

log = logging.getLogger("meshproof.bench")


@dataclass(frozen=True)
class Measurement:
    run: RunRecord
    resources: list[ResourceUsage] = field(default_factory=list)


class Executor(Protocol):
    def warm_up(self, arm: str, point: LoadPoint) -> None: ...

    def measure_fortio(self, arm: str, point: LoadPoint, repetition: int, order: int) -> Measurement: ...

    def measure_locust(self, arm: str, repetition: int, order: int) -> Measurement: ...

    def redeploy(self) -> None: ...


@dataclass
class PlanOutcome:
    runs: list[RunRecord] = field(default_factory=list)
    resources: list[ResourceUsage] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# Runs a plan (a profile, or a part of it) on arms already deployed: the benchmark suite's `measure` fixture.
Measure = Callable[[BenchPlan], PlanOutcome]


def _recoverable() -> tuple[type[Exception], ...]:
    """A tool that fails outright (no result) is noted and the plan goes on; anything else propagates."""
    from meshproof.bench.fortio import FortioFailed
    from meshproof.bench.locust import LocustFailed

    return (FortioFailed, LocustFailed)


def run_plan(
    plan: BenchPlan,
    executor: Executor,
    *,
    arms: list[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] = log.info,
) -> PlanOutcome:
    arms = list(arms if arms is not None else plan.arms)
    outcome = PlanOutcome()
    recoverable = _recoverable()
    order = 0

    def record(label: str, measure: Callable[[int], Measurement]) -> None:
        nonlocal order
        try:
            measurement = measure(order)
        except recoverable as exc:
            outcome.failures.append(f"{label}: {exc}")
            progress(f"{label}: FAILED {exc}")
        else:
            outcome.runs.append(measurement.run)
            outcome.resources.extend(measurement.resources)
            state = (
                "valid" if measurement.run.valid else "INVALID " + "; ".join(measurement.run.invalid_reasons)
            )
            progress(f"{label}: {measurement.run.actual_qps:.1f} req/s, {state}")
        order += 1
        if plan.pause_s:
            sleep(plan.pause_s)

    for rep in range(1, plan.repetitions + 1):
        if rep > 1 and plan.redeploy_each_repetition:
            executor.redeploy()
        if plan.fortio.enabled:
            for index, point in enumerate(plan.fortio_points()):
                for arm in arm_order(arms, rep, plan.seed * 1000 + index):
                    label = f"rep {rep} {arm} fortio {point.label()}"
                    if plan.warmup_s > 0:
                        try:
                            executor.warm_up(arm, point)
                        except recoverable as exc:
                            outcome.failures.append(f"{label} warm-up: {exc}")
                            continue
                    record(label, partial(executor.measure_fortio, arm, point, rep))
        if plan.locust.enabled:
            for arm in arm_order(arms, rep, plan.seed * 1000 + 999):
                record(f"rep {rep} {arm} locust", partial(executor.measure_locust, arm, rep))
    return outcome
