"""Pure verdicts over observations and responses. Nothing in this package talks to a cluster."""

from meshproof.checks.verdict import CheckFailed, Verdict, require

__all__ = ["CheckFailed", "Verdict", "require"]
