"""`bench calibrate`'s analysis on synthetic runs with a known answer, and `bench local`'s arms, warm-up and
Locust core defaults (the real server and fortio are in tests/local_real/test_bench_calibrate_local.py)."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data.bench_runs import run_record

from meshproof.bench.calibrate import (
    REFERENCE_ARM,
    CalibrationSpec,
    analyse,
    shift_arm,
    table,
    upper_bound,
)
from meshproof.bench.histogram import histogram_from_samples
from meshproof.bench.local import (
    LocalArm,
    LocalBenchError,
    LocalBenchSpec,
    default_locust_processes,
    fortio_loads,
    parse_arms,
)
from meshproof.bench.model import BenchmarkResults, RunRecord


def run(arm: str, rep: int, samples: np.ndarray, valid: bool = True) -> RunRecord:
    return run_record(samples, arm=arm, rep=rep, actual_qps=1000 if valid else 900, valid=valid)


def session(
    shifts: tuple[float, ...],
    reps: int,
    invalid: set[tuple[str, int]] | None = None,
    actual: dict[float, float] | None = None,
) -> BenchmarkResults:
    """Every arm every repetition; the host's drift is shared by the arms of one repetition. `actual`
    maps a named shift to the shift its arm really gets (a 0-shift arm that came out faster)."""
    rng = np.random.default_rng(4)
    runs = []
    for rep in range(1, reps + 1):
        host = 1 + rng.normal(0, 0.03)
        for arm, shift in ((REFERENCE_ARM, 0.0), *((shift_arm(s), (actual or {}).get(s, s)) for s in shifts)):
            samples = (0.1 + rng.lognormal(np.log(0.1), 0.3, 5000) + shift) * host
            runs.append(run(arm, rep, samples, valid=(arm, rep) not in (invalid or set())))
    return BenchmarkResults(kind="local", runs=runs)


def test_calibration_finds_the_planted_shift_and_not_the_unchanged_one() -> None:
    spec = CalibrationSpec(repetitions=9, shifts_ms=(0.0, 0.02, 0.2))
    calibration = analyse(session(spec.shifts_ms, 9), spec)
    zero, tiny, big = calibration.rows
    assert zero.trials == 3 and zero.unsustained == 0
    for mode in ("paired", "unpaired"):
        assert calibration.false_positive(mode, "p50") == 0
        assert big.rate(mode, "p50") == 1.0
        assert tiny.rate(mode, "p50") == 0  # 0.02 ms is below the 0.05 ms minimum effect
        assert calibration.smallest_resolved(mode, "p50") == 0.2
    assert big.measured_ms["p50"] == pytest.approx(0.2, abs=0.02)
    text = table(calibration)
    assert "\n| 0.2 | +0.19" in text and "smallest shift flagged" in text
    # k/n with the 95% upper bound, never a bare "0%": 0 of 3 trials bounds the rate at 63%
    assert "| 0 | " in text and "0/3 (<=63%)" in text and "3/3 (<=100%)" in text
    assert "p50 0/3 (<=63%)" in text
    assert calibration.false_positive_bound("paired", "p50") == pytest.approx(1 - 0.05 ** (1 / 3))
    json_doc = calibration.to_json()
    assert json_doc["smallest_resolved_shift_ms"]["paired"]["p50"] == 0.2  # type: ignore[index]


def test_upper_bound_is_clopper_pearson() -> None:
    assert upper_bound(0, 4) == pytest.approx(1 - 0.05**0.25)  # 52.7%: 0 of 4 is no "0% false positives"
    assert upper_bound(4, 4) == 1.0
    assert 0.5 < upper_bound(2, 4) < 1


def test_an_unchanged_rerun_judged_improved_is_a_false_flag() -> None:
    spec = CalibrationSpec(repetitions=6, shifts_ms=(0.0,))
    (zero,) = analyse(session((0.0,), 6, actual={0.0: -0.2}), spec).rows
    assert zero.flagged["paired"]["p50"] == 2 and zero.rate("unpaired", "p50") == 1.0


def test_invalid_runs_are_left_out_and_a_trial_without_two_valid_is_unsustained() -> None:
    spec = CalibrationSpec(repetitions=6, shifts_ms=(0.0,))
    # trial 1 (repetitions 1-3) keeps 2 valid runs: judged on them; trial 2 keeps 1: unsustained
    invalid = {(shift_arm(0.0), 2), (shift_arm(0.0), 4), (shift_arm(0.0), 5)}
    (zero,) = analyse(session((0.0,), 6, invalid=invalid), spec).rows
    assert zero.unsustained == 1 and zero.trials == 2
    assert zero.rate("paired", "p50") == 0 and zero.flagged["paired"]["p50"] == 0


def test_too_few_requests_beyond_p99_is_not_a_rate_of_zero() -> None:
    spec = CalibrationSpec(repetitions=3, shifts_ms=(0.0,))
    tiny = session((0.0,), 3)
    tiny.runs[:] = [
        r.model_copy(update={"histogram": histogram_from_samples(np.full(200, 0.2))}) for r in tiny.runs
    ]
    assert analyse(tiny, spec).rows[0].rate("paired", "p99") is None  # shown as n/a


def test_parse_arms_names_and_refuses_duplicates() -> None:
    assert parse_arms(["http://127.0.0.1:1/echo"]) == (LocalArm("local", "http://127.0.0.1:1/echo"),)
    assert [a.name for a in parse_arms(["http://h:1/", "http://h:2/"])] == ["a", "b"]
    assert parse_arms(["base=http://h:1/?x=1", "mesh=http://h:2/"])[0] == LocalArm("base", "http://h:1/?x=1")
    with pytest.raises(LocalBenchError, match="repeat"):
        parse_arms(["x=http://h:1/", "x=http://h:2/"])


@pytest.mark.parametrize("arm", ["a/../b", ".hidden", "two words", "-x", "ä"])
def test_parse_arms_refuses_names_outside_the_run_id_rule(arm: str) -> None:
    with pytest.raises(LocalBenchError, match=r"must match \[A-Za-z0-9\]") as caught:
        parse_arms([f"{arm}=http://h:1/"])
    assert "\n" not in str(caught.value)
    with pytest.raises(LocalBenchError, match="must match"):
        parse_arms(["http://h:1/"], single_name=arm)
    assert parse_arms(["mesh-1.27_a=http://h:1/"])[0].name == "mesh-1.27_a"


@pytest.mark.parametrize("url", ["http://user:s3cret@h:1/", "base=http://user:s3cret@h:1/", "http://tok@h/"])
def test_parse_arms_refuses_credentials_without_echoing_them(url: str) -> None:
    with pytest.raises(LocalBenchError, match="credentials") as caught:
        parse_arms([url])
    assert "s3cret" not in str(caught.value) and "tok" not in str(caught.value)


def test_warm_up_uses_the_measured_method_and_payload() -> None:
    """Issue 12: the warm-up was a GET while the measured run POSTed --payload-size."""
    spec = LocalBenchSpec(
        arms=(LocalArm("a", "http://127.0.0.1:1/echo"),),
        tool="fortio",
        qps=100,
        connections=4,
        duration_s=10,
        warmup_s=2,
        payload_bytes=1024,
    )
    warm, measured = fortio_loads(spec, spec.arms[0], "run")
    assert warm.payload_size == measured.payload_size == 1024
    assert "-payload-size" in warm.args() and warm.duration_s == 2
    assert (warm.qps, warm.connections, warm.url) == (measured.qps, measured.connections, measured.url)


def test_locust_uses_every_core_but_leaves_one_to_a_local_target() -> None:
    assert default_locust_processes(allow_remote=False, cpus=8) == 7
    assert default_locust_processes(allow_remote=True, cpus=8) == 8
    assert default_locust_processes(allow_remote=False, cpus=1) == 1
