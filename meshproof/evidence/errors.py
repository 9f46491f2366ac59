"""Errors raised by evidence parsers and collectors: one line saying what was wrong with which input."""

from __future__ import annotations


class EvidenceParseError(ValueError):
    """Tool output is not in the format the parser expects (the message names the input and the spot)."""


class EvidenceCollectionError(RuntimeError):
    """Evidence could not be fetched from the cluster (no such pod, tool failed, port-forward failed)."""
