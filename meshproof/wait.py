"""Waiting for a distributed system to converge, without bare sleeps.

`eventually` retries a callable until it succeeds N times in a row: mesh config propagates to proxies one
by one, so a single success can be a lucky hit on an already-updated proxy (Istio's framework learned this;
suite-anchors §3 "Retries"). Every assertion lives inside the callable, so the failure message is the last
real error, not "timed out". `consistently` is for negative checks: the thing must hold for the whole window.

Every wait is recorded in RECORDER so the pytest plugin can attach attempts and elapsed time to the test
report and warn when a wait used most of its budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from meshproof.config import RunConfig

T = TypeVar("T")
log = logging.getLogger("meshproof.wait")

# A wait that needed more than this share of its budget passed, but the next slow run will not.
NEAR_BUDGET_SHARE = 0.75
# A wait longer than this prints a live progress line, then one every LONG_WAIT_REPEAT seconds.
LONG_WAIT_AFTER = 15.0
LONG_WAIT_REPEAT = 30.0


class WaitTimeout(AssertionError):
    """The condition did not converge in time. An AssertionError so pytest reports a failure, not an error."""


@dataclass(frozen=True)
class WaitRecord:
    description: str
    attempts: int
    elapsed: float
    budget: float
    ok: bool

    @property
    def near_budget(self) -> bool:
        return self.ok and self.budget > 0 and self.elapsed > NEAR_BUDGET_SHARE * self.budget


class WaitRecorder:
    """Collects the waits of the current test. Thread-safe: collectors may wait from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[WaitRecord] = []

    def add(self, record: WaitRecord) -> None:
        with self._lock:
            self._records.append(record)
        if record.near_budget:
            log.warning(
                "wait '%s' used %.0f%% of its %.0fs budget (%d attempts): "
                "raise --timeout-scale on slow clusters",
                record.description,
                100 * record.elapsed / record.budget,
                record.budget,
                record.attempts,
            )

    def drain(self) -> list[WaitRecord]:
        with self._lock:
            records, self._records = self._records, []
        return records


RECORDER = WaitRecorder()


def eventually(
    fn: Callable[[], T],
    *,
    timeout: float,
    converge: int = 1,
    interval: float = 1.0,
    max_interval: float = 5.0,
    description: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until it returns without raising `converge` times in a row; return the last value.

    Any exception counts as a failed attempt and resets the streak. The pause between attempts grows by
    half after each failure up to `max_interval`, and is `interval` while a streak is building.
    On timeout raises WaitTimeout naming the description, attempts, elapsed time and the last error.
    """
    if converge < 1:
        raise ValueError("converge must be >= 1")
    start = clock()
    deadline = start + timeout
    attempts = 0
    streak = 0
    pause = interval
    last_error: BaseException | None = None
    announce_at = start + LONG_WAIT_AFTER
    while True:
        attempts += 1
        if clock() >= announce_at:  # a person watching sees what is slow, and why
            announce_at = clock() + LONG_WAIT_REPEAT
            _say_still_waiting(description, clock() - start, timeout, attempts, last_error)
        try:
            value = fn()
        except Exception as exc:  # every failure, assertion or transport, is one failed attempt
            last_error = exc
            streak = 0
            pause = min(max_interval, pause * 1.5)
        else:
            streak += 1
            pause = interval
            if streak >= converge:
                RECORDER.add(WaitRecord(description, attempts, clock() - start, timeout, True))
                return value
        remaining = deadline - clock()
        if remaining <= 0:
            break
        # the attempt after the last pause lands at the deadline at the latest: one honest final try
        sleep(min(pause, remaining))
    elapsed = clock() - start
    RECORDER.add(WaitRecord(description, attempts, elapsed, timeout, False))
    streak_note = f", best streak not reached ({streak}/{converge})" if converge > 1 else ""
    last = f"{type(last_error).__name__}: {last_error}" if last_error else "no error (streak too short)"
    raise WaitTimeout(
        f"{description}: not converged after {elapsed:.1f}s ({attempts} attempts{streak_note}); last: {last}"
    )


def _say_still_waiting(
    description: str, elapsed: float, timeout: float, attempts: int, last: BaseException | None
) -> None:
    from meshproof import progress

    reason = str(last).strip().splitlines()[0][:160] if last is not None and str(last).strip() else "streak"
    progress.say(
        f"  still waiting ({elapsed:.0f}s of {timeout:.0f}s, attempt {attempts}): {description} — {reason}"
    )


def consistently(
    fn: Callable[[], object],
    *,
    duration: float,
    interval: float = 1.0,
    description: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call `fn` repeatedly for `duration` seconds; the first raising call fails the check."""
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        try:
            fn()
        except Exception as exc:
            elapsed = clock() - start
            RECORDER.add(WaitRecord(description, attempts, elapsed, duration, False))
            raise AssertionError(
                f"{description}: stopped holding after {elapsed:.1f}s (attempt {attempts}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        elapsed = clock() - start
        if elapsed >= duration:
            RECORDER.add(WaitRecord(description, attempts, elapsed, duration, True))
            return
        sleep(min(interval, duration - elapsed))


class Timeouts(BaseModel):
    """Every budget a run waits on, in seconds, already multiplied by --timeout-scale."""

    model_config = ConfigDict(frozen=True)

    cluster_create: float = Field(300, description="create a kind cluster and see its node Ready")
    install: float = Field(600, description="mesh install incl. operator, CRs Ready, DaemonSets available")
    crd_established: float = Field(60, description="a CRD reports Established")
    rollout: float = Field(240, description="a Deployment/DaemonSet rollout completes")
    pod_ready: float = Field(180, description="a pod reports Ready")
    traffic: float = Field(60, description="traffic converges on the expected outcome (N in a row)")
    policy: float = Field(90, description="a policy change reaches every proxy and shows in traffic")
    request: float = Field(5, description="one request, distinct from the total budget")

    @classmethod
    def for_config(cls, cfg: RunConfig) -> Timeouts:
        return cls.scaled(cfg.timeout_scale)

    @classmethod
    def scaled(cls, factor: float) -> Timeouts:
        base = cls()
        return cls(**{name: getattr(base, name) * factor for name in cls.model_fields})
