"""Load profiles and the order of a benchmark (perf-anchors §7.5, §7.8), driven with a fake executor.

The fake executor proves the scheduling (warm-up before every measurement, arms shuffled per point and
repetition, redeploys, failures noted and the plan continued); it cannot prove anything about a cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meshproof.bench.fortio import FortioFailed
from meshproof.bench.model import Histogram, LatencySummary, RunRecord
from meshproof.bench.plan import PROFILES_DIR, BenchPlan, LoadPoint, PlanError, arm_order, load_plan
from meshproof.bench.runner import Measurement, run_plan

ARMS = ["no-mesh", "sidecar", "ambient", "waypoint"]


def test_shipped_profiles_load_and_standard_follows_the_recommended_method() -> None:
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert names == ["quick", "scale", "smoke", "standard"]
    standard = load_plan("standard")
    assert standard.arms == ARMS and standard.repetitions >= 5
    assert (standard.warmup_s, standard.duration_s, standard.payload_bytes) == (60, 240, 1024)
    assert standard.fortio.connection_sweep and standard.fortio.connection_sweep.connections == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
    ]
    assert standard.fortio.qps_sweep and standard.fortio.qps_sweep.qps == [100, 500, 1000, 2000, 4000]
    assert standard.validity.min_qps_ratio == 0.99 and standard.validity.max_error_ratio == 0.001
    for name in names:
        plan = load_plan(name)
        # every profile measures something: load points, or (scale) pod counts
        assert plan.fortio_points() or (plan.scale.enabled and plan.scale.pods), name


def test_points_of_several_sweeps_are_measured_once() -> None:
    points = load_plan("standard").fortio_points()
    keys = [(p.qps, p.connections) for p in points]
    assert len(keys) == len(set(keys)) == 12  # 7 + 5 - the shared 1000x16 point + 1 max-throughput
    canonical = next(p for p in points if (p.qps, p.connections) == (1000, 16))
    assert canonical.scenarios == ("connection-sweep", "qps-sweep")
    assert next(p for p in points if p.qps is None).scenarios == ("max-throughput",)


def test_arm_order_is_shuffled_but_reproducible() -> None:
    orders = {tuple(arm_order(ARMS, rep, seed=1)) for rep in range(1, 30)}
    assert len(orders) > 5
    assert arm_order(ARMS, 3, seed=1) == arm_order(ARMS, 3, seed=1)
    assert sorted(arm_order(ARMS, 3, seed=1)) == sorted(ARMS)


def test_bad_profiles_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no load profile 'nope' \\(known: quick, scale, smoke, standard"):
        load_plan("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrepetitions: 0\n", encoding="utf-8")
    with pytest.raises(PlanError, match="repetitions"):
        load_plan(str(bad))
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: x\narms: [sidecar, sidecar]\n", encoding="utf-8")
    with pytest.raises(PlanError, match="arms must not repeat"):
        load_plan(str(dup))


def fake_run(arm: str, tool: str, qps: float | None, conns: int, rep: int, order: int) -> RunRecord:
    return RunRecord(
        run_id=f"{tool}-{arm}-{qps}-{conns}-r{rep}",
        tool=tool,  # type: ignore[arg-type]
        arm=arm,
        repetition=rep,
        order=order,
        target="http://fortio-server:8080/echo",
        requested_qps=qps,
        connections=conns,
        requested_duration_s=1,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        actual_duration_s=1,
        actual_qps=qps or 5000,
        requests=100,
        errors=0,
        latency=LatencySummary(min_ms=0.1, mean_ms=0.2, max_ms=0.5, percentiles_ms={}),
        histogram=Histogram(),
        valid=True,
    )


class FakeExecutor:
    def __init__(self, fail_on: tuple[str, float | None] | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def warm_up(self, arm: str, point: LoadPoint) -> None:
        self.calls.append(("warmup", arm, point.qps, point.connections))

    def measure_fortio(self, arm: str, point: LoadPoint, repetition: int, order: int) -> Measurement:
        self.calls.append(("fortio", arm, point.qps, point.connections, repetition, order))
        if self.fail_on == (arm, point.qps):
            raise FortioFailed("fortio load exited 1: Aborting because of error -1")
        return Measurement(run=fake_run(arm, "fortio", point.qps, point.connections, repetition, order))

    def measure_locust(self, arm: str, repetition: int, order: int) -> Measurement:
        self.calls.append(("locust", arm, repetition, order))
        return Measurement(run=fake_run(arm, "locust", None, 8, repetition, order))

    def redeploy(self) -> None:
        self.calls.append(("redeploy",))


def small_plan(**overrides: object) -> BenchPlan:
    data: dict[str, object] = {
        "name": "t",
        "arms": ARMS,
        "repetitions": 3,
        "warmup_s": 1,
        "duration_s": 1,
        "pause_s": 0,
        "fortio": {"connection_sweep": {"qps": 100, "connections": [2, 4]}},
        "locust": {"enabled": True, "users": 8},
        "redeploy_each_repetition": True,
    }
    data.update(overrides)
    return BenchPlan.model_validate(data)


def test_every_measurement_follows_its_own_warm_up_and_arms_are_interleaved_per_point() -> None:
    executor = FakeExecutor()
    outcome = run_plan(small_plan(), executor, sleep=lambda _s: None, progress=lambda _m: None)
    assert len(outcome.runs) == 3 * (4 * 2 + 4) and not outcome.failures
    fortio_calls = [c for c in executor.calls if c[0] == "fortio"]
    for call in fortio_calls:
        before = executor.calls[executor.calls.index(call) - 1]
        assert before == ("warmup", call[1], call[2], call[3])
    # at each point all four arms run back to back, in an order that changes between points/repetitions
    blocks = [tuple(c[1] for c in fortio_calls[i : i + 4]) for i in range(0, len(fortio_calls), 4)]
    assert all(sorted(b) == sorted(ARMS) for b in blocks)
    assert len(set(blocks)) > 1
    assert [c[0] for c in executor.calls].count("redeploy") == 2  # before repetitions 2 and 3
    orders = [r.order for r in outcome.runs]
    assert orders == sorted(orders) == list(range(len(orders)))


def test_a_failed_tool_run_is_noted_and_the_plan_goes_on() -> None:
    executor = FakeExecutor(fail_on=("ambient", 100))
    plan = small_plan(repetitions=1, locust={"enabled": False}, redeploy_each_repetition=False)
    outcome = run_plan(plan, executor, sleep=lambda _s: None, progress=lambda _m: None)
    assert len(outcome.failures) == 2 and all("ambient" in f and "Aborting" in f for f in outcome.failures)
    assert len(outcome.runs) == 6
    assert not [c for c in executor.calls if c[0] == "redeploy"]


def test_only_the_given_arms_run() -> None:
    executor = FakeExecutor()
    outcome = run_plan(
        small_plan(repetitions=1), executor, arms=["no-mesh", "sidecar"], sleep=lambda _s: None
    )
    assert {r.arm for r in outcome.runs} == {"no-mesh", "sidecar"}


def test_estimated_duration_of_the_standard_profile_is_honest() -> None:
    # 5 reps x 4 arms x (12 fortio points + 1 Locust run) x (60 warm-up + 240 measured + 60 pause)
    assert load_plan("standard").estimated_seconds() == 5 * 4 * 13 * 360
