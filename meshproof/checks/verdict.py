"""The one result type every check returns: a verdict with the reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def passed(cls, reason: str = "ok") -> Verdict:
        return cls(True, reason)

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        return cls(False, reason)


class CheckFailed(AssertionError):
    """Raised by `require` so a failed verdict reads as a test failure inside `eventually`."""


def require(verdict: Verdict) -> Verdict:
    """Turn a failed verdict into an assertion error carrying its reason."""
    if not verdict.ok:
        raise CheckFailed(verdict.reason)
    return verdict
