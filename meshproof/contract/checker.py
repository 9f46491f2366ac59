"""Run the Go contract checker over a batch of documents (one process for the whole batch)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Check = Literal["resource", "istio-operator", "istio-values", "mesh-config", "kind-config"]


class CheckerFailed(Exception):
    """The checker itself failed (bad CRD file, crash) - not a finding about a document."""


@dataclass(frozen=True)
class Finding:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(document)'}: {self.message}"


@dataclass(frozen=True)
class CheckItem:
    """One document for the Go checker; `strict_env` applies the Sail CRD rule that env maps hold strings."""

    id: str
    check: Check
    doc: Any
    strict_env: bool = False


@dataclass
class CheckResult:
    id: str
    checked_by: str
    findings: list[Finding] = field(default_factory=list)


def run_checker(
    binary: Path, crd_files: Sequence[Path], items: Sequence[CheckItem], timeout: float = 120.0
) -> dict[str, CheckResult]:
    request = {
        "crdFiles": [str(p) for p in crd_files],
        "items": [{"id": i.id, "check": i.check, "doc": i.doc, "strictEnv": i.strict_env} for i in items],
    }
    proc = subprocess.run(
        [str(binary)], input=json.dumps(request), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise CheckerFailed(f"{binary} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    response = json.loads(proc.stdout)
    results: dict[str, CheckResult] = {}
    for r in response["results"]:
        findings = [Finding(e.get("path", ""), e["message"]) for e in r["errors"]]
        results[r["id"]] = CheckResult(r["id"], r["checkedBy"], findings)
    return results
