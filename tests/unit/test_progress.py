"""Live progress: lines reach the installed sink with elapsed time; long waits announce themselves."""

from __future__ import annotations

import logging

import pytest

from meshproof import progress
from meshproof.wait import eventually


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_lines_carry_the_elapsed_time_and_go_to_the_sink():
    clock = FakeClock()
    lines: list[str] = []
    with progress.use(lines.append, clock=clock):
        clock.now += 75
        progress.say("step 1/7 'Create kind cluster' on c1: running", clock=clock)
    assert lines == ["[1:15] step 1/7 'Create kind cluster' on c1: running"]


def test_without_a_sink_or_with_a_broken_one_lines_go_to_the_log(caplog):
    caplog.set_level(logging.INFO, logger="meshproof.progress")
    progress.say("no terminal")

    def broken(line: str) -> None:
        raise OSError("terminal closed")

    with progress.use(broken):
        progress.say("terminal went away")
    assert [r.getMessage().split("] ", 1)[1] for r in caplog.records] == ["no terminal", "terminal went away"]


def test_a_long_wait_prints_still_waiting_lines_with_the_last_error():
    clock = FakeClock()
    lines: list[str] = []

    def not_yet() -> None:
        raise AssertionError("ztunnel has not seen the policy")

    with progress.use(lines.append), pytest.raises(AssertionError):
        eventually(not_yet, timeout=70, interval=5, max_interval=5, description="policy reaches ztunnel",
                   clock=clock, sleep=clock.sleep)  # fmt: skip
    assert len(lines) == 2, lines  # after 15 s and again 30 s later: not one per attempt
    assert "still waiting (15s of 70s" in lines[0]
    assert lines[0].endswith("policy reaches ztunnel — ztunnel has not seen the policy")


def test_a_quick_wait_prints_nothing():
    clock = FakeClock()
    lines: list[str] = []
    with progress.use(lines.append):
        eventually(lambda: None, timeout=60, description="quick", clock=clock, sleep=clock.sleep)
    assert lines == []
