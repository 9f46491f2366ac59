"""Run the contract check over many plans at once and report findings by combination, document and path."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshproof.contract.checker import CheckItem, Finding, run_checker
from meshproof.contract.documents import PlannedDocument, plan_documents
from meshproof.contract.upstream import Target, Upstream, target_for


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
    targets: set[str] = field(default_factory=set)  # the exact releases the plans were checked against


@dataclass(frozen=True)
class PlanUnderTest:
    combination: str
    steps: list[Any]
    provider: str
    ossm_version: str
    istio_version: str

    @property
    def target(self) -> Target:
        return target_for(self.provider, self.ossm_version, self.istio_version)


def resource_groups(items: Sequence[CheckItem]) -> set[str]:
    """The API groups of the Kubernetes objects among the items: the CRDs the checker needs."""
    groups = set()
    for item in items:
        if item.check == "resource" and isinstance(item.doc, dict):
            api_version = str(item.doc.get("apiVersion", ""))
            groups.add(api_version.split("/", 1)[0] if "/" in api_version else "")
    return groups


def check_documents(documents: Sequence[PlannedDocument], upstream: Upstream) -> dict[str, list[Finding]]:
    """Findings per document label (Python findings plus the Go checker's, in that order), against the
    definitions of `upstream`'s target."""
    items = [item for doc in documents for item in doc.items]
    results = (
        run_checker(upstream.checker, upstream.crd_files(resource_groups(items)), items) if items else {}
    )
    out: dict[str, list[Finding]] = {}
    for doc in documents:
        findings = list(doc.findings)
        for item in doc.items:
            findings += results[item.id].findings
        out[doc.label] = findings
    return out


def validate_plans(plans: Sequence[PlanUnderTest], upstream: Upstream) -> ContractReport:
    report = ContractReport()
    by_target: dict[Target, list[tuple[str, PlannedDocument]]] = defaultdict(list)
    for plan in plans:
        targeted = upstream.for_target(plan.target)
        for doc in plan_documents(plan.steps, targeted, prefix=f"[{plan.combination}] "):
            by_target[plan.target].append((plan.combination, doc))
    for target, entries in by_target.items():
        report.targets.add(str(target))
        items = [item for _, doc in entries for item in doc.items]
        crds = upstream.for_target(target).crd_files(resource_groups(items))
        results = run_checker(upstream.checker, crds, items) if items else {}
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
