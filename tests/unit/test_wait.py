"""eventually / consistently on a fake clock: convergence, streak reset, messages, records."""

from __future__ import annotations

import pytest

from meshproof.config import load_config
from meshproof.wait import RECORDER, Timeouts, WaitTimeout, consistently, eventually


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(outcomes):
    """A callable that fails (raises) or succeeds per a list of booleans, then keeps the last."""
    calls = {"n": 0}

    def fn():
        index = min(calls["n"], len(outcomes) - 1)
        calls["n"] += 1
        if not outcomes[index]:
            raise AssertionError(f"attempt {calls['n']} saw 503")
        return calls["n"]

    return fn, calls


def test_converges_only_after_n_consecutive_successes():
    clock = FakeClock()
    fn, _calls = scripted([True, False, True, True, True])
    RECORDER.drain()
    result = eventually(
        fn, timeout=60, converge=3, interval=1, description="x", clock=clock, sleep=clock.sleep
    )
    assert result == 5  # the first success was reset by the failure at attempt 2
    (record,) = RECORDER.drain()
    assert record.ok and record.attempts == 5


def test_timeout_message_names_description_attempts_and_last_error():
    clock = FakeClock()
    fn, _ = scripted([False])
    RECORDER.drain()
    with pytest.raises(WaitTimeout) as err:
        eventually(
            fn, timeout=10, interval=1, description="sleep -> httpbin 200", clock=clock, sleep=clock.sleep
        )
    message = str(err.value)
    assert message.startswith("sleep -> httpbin 200: not converged after 10.0s")
    assert "AssertionError: attempt" in message and "saw 503" in message
    (record,) = RECORDER.drain()
    assert not record.ok and record.elapsed == pytest.approx(10)
    assert isinstance(err.value, AssertionError)


def test_backoff_grows_after_failures_and_never_passes_the_deadline():
    clock = FakeClock()
    fn, _ = scripted([False])
    with pytest.raises(WaitTimeout):
        eventually(
            fn, timeout=20, interval=1, max_interval=4, description="x", clock=clock, sleep=clock.sleep
        )
    assert clock.sleeps[:3] == [1.5, 2.25, 3.375]
    assert max(clock.sleeps) == 4
    assert clock.now == pytest.approx(20)


def test_streak_shorter_than_converge_reports_it():
    clock = FakeClock()
    fn, _ = scripted([True, False] * 100)
    with pytest.raises(WaitTimeout, match=r"best streak not reached"):
        eventually(fn, timeout=10, converge=3, interval=1, description="x", clock=clock, sleep=clock.sleep)


def test_near_budget_wait_is_flagged(caplog):
    clock = FakeClock()
    fn, _ = scripted([False] * 8 + [True])
    RECORDER.drain()
    eventually(fn, timeout=20, interval=1, max_interval=2, description="slow", clock=clock, sleep=clock.sleep)
    (record,) = RECORDER.drain()
    assert record.near_budget
    assert "used" in caplog.text and "--timeout-scale" in caplog.text


def test_consistently_fails_on_first_failure_and_passes_when_holding():
    clock = FakeClock()
    fn, _calls = scripted([True, True, False])
    with pytest.raises(
        AssertionError, match=r"plaintext stays refused: stopped holding after 2.0s \(attempt 3\)"
    ):
        consistently(
            fn, duration=10, interval=1, description="plaintext stays refused", clock=clock, sleep=clock.sleep
        )
    clock = FakeClock()
    ok, ok_calls = scripted([True])
    consistently(ok, duration=5, interval=1, description="x", clock=clock, sleep=clock.sleep)
    assert ok_calls["n"] == 6  # at 0,1,2,3,4,5 s


def test_converge_must_be_positive():
    with pytest.raises(ValueError):
        eventually(lambda: None, timeout=1, converge=0, description="x")


def test_timeouts_scale_with_config():
    base = Timeouts()
    scaled = Timeouts.for_config(load_config({"timeout_scale": "2.5"}, env={}))
    assert scaled.install == base.install * 2.5
    assert scaled.request == base.request * 2.5
    assert all(f.description for f in Timeouts.model_fields.values())
