"""Run the contract check over many plans at once and report findings by combination, document and path."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshproof.contract.checker import Finding, run_checker
from meshproof.contract.documents import PlannedDocument, plan_documents, sail_variant
from meshproof.contract.upstream import Upstream


@dataclass(frozen=True)
class Problem:
    combination: str
    document: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.combination} | {self.document} | {self.path or '(document)'}: {self.message}"


@dataclass
class ContractReport:
    problems: list[Problem] = field(default_factory=list)
    uncovered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # reason -> documents
    checked_documents: int = 0
    checked_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class PlanUnderTest:
    combination: str
    steps: list[Any]
    provider: str
    ossm_version: str


def check_documents(
    documents: Sequence[PlannedDocument], upstream: Upstream, variant: str
) -> dict[str, list[Finding]]:
    """Findings per document label (Python findings plus the Go checker's, in that order)."""
    items = [item for doc in documents for item in doc.items]
    results = run_checker(upstream.checker, upstream.crd_files(variant), items) if items else {}
    out: dict[str, list[Finding]] = {}
    for doc in documents:
        findings = list(doc.findings)
        for item in doc.items:
            findings += results[item.id].findings
        out[doc.label] = findings
    return out


def validate_plans(plans: Sequence[PlanUnderTest], upstream: Upstream) -> ContractReport:
    report = ContractReport()
    by_variant: dict[str, list[tuple[str, PlannedDocument]]] = defaultdict(list)
    for plan in plans:
        for doc in plan_documents(plan.steps, upstream, prefix=f"[{plan.combination}] "):
            by_variant[sail_variant(plan.provider, plan.ossm_version)].append((plan.combination, doc))
    for variant, entries in by_variant.items():
        items = [item for _, doc in entries for item in doc.items]
        results = run_checker(upstream.checker, upstream.crd_files(variant), items) if items else {}
        for combination, doc in entries:
            if doc.uncovered is not None:
                report.uncovered[doc.uncovered].add(doc.label.split("] ", 1)[-1])
                continue
            report.checked_documents += 1
            findings = list(doc.findings)
            for item in doc.items:
                findings += results[item.id].findings
                report.checked_by[results[item.id].checked_by.split(" (")[0]] += 1
            if not doc.items:
                report.checked_by["chart values.yaml key structure"] += 1
            document = doc.label.split("] ", 1)[-1]
            report.problems += [Problem(combination, document, f.path, f.message) for f in findings]
    return report
