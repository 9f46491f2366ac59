"""Run a load generator as a child process and account the CPU time it (and its own children) used."""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float  # user + system CPU of the child and the descendants it waited for


def run_child(argv: Sequence[str], *, timeout: float) -> ChildRun:
    """subprocess.run with CPU accounting. RUSAGE_CHILDREN only grows when a child is reaped, so the
    delta around this call is this child's (this module starts no other children meanwhile)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ChildRun(proc.returncode, proc.stdout, proc.stderr, cpu)
