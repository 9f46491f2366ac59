"""Turn an install plan into contract checks: which upstream definition covers each rendered document.

A document is covered by exactly one route: a Kubernetes object (CRD or built-in), an IstioOperator, a kind
cluster config, or the values of a Helm chart. Documents no fetched definition covers are listed in
UNCOVERED with the reason; anything else that has no route is a failure, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshproof.contract.checker import CheckItem, Finding
from meshproof.contract.helm_values import check_chart_values, env_values_are_strings
from meshproof.contract.upstream import ISTIO_CHARTS, Upstream

# What no reachable registry serves, so nothing upstream can check it here (tests/contract/README.md).
UNCOVERED_KINDS = {
    (
        "operator.openshift.io/v1alpha1",
        "IstioCSR",
    ): "openshift/cert-manager-operator is not served by the Go module proxy",
}
UNCOVERED_CHARTS = {
    "metrics-server": "the metrics-server chart is not published in a module the proxy serves",
    "sail-operator": "github.com/istio-ecosystem/sail-operator is not served by the Go module proxy",
}
# istio-facts §1.4: the Sail CRDs type every env map as map[string]string.
SAIL_ENV_RULE = "sailoperator.io CRD types env as map[string]string"
# For istioctl and Helm the charts quote env values, so a bool works there; meshproof still requires strings
# because one MeshSpec feeds all three installers and Sail rejects anything else (istio-facts §1.4).
MESHPROOF_ENV_RULE = "meshproof rule: the values must also be valid for Sail (env is map[string]string)"


@dataclass
class PlannedDocument:
    """One rendered document, the Go checks it needs and the findings the Python checks already made."""

    label: str
    items: list[CheckItem] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    uncovered: str | None = None


def document_label(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{doc.get('apiVersion')} {doc.get('kind')} {where}{meta.get('name')}"


def plan_documents(steps: list[Any], upstream: Upstream, prefix: str) -> Iterator[PlannedDocument]:
    for index, step in enumerate(steps):
        where = f"{prefix}step {index + 1} '{step.title}' [{step.cluster}]"
        for n, doc in enumerate(step.manifests):
            yield manifest_document(doc, f"{where} manifest {document_label(doc)}", f"{where}#m{n}", upstream)
        if step.istio_operator is not None or is_istioctl_install(step.command):
            yield istio_operator_document(step, f"{where} IstioOperator", f"{where}#iop", upstream)
        if step.helm_chart is not None:
            yield helm_document(
                step, upstream, f"{where} helm values of chart {step.helm_chart}", f"{where}#helm"
            )
        if getattr(step, "config_file", None) is not None:
            yield kind_config_document(step.config_file, f"{where} kind cluster config", f"{where}#config")


def manifest_document(doc: dict[str, Any], label: str, key: str, upstream: Upstream) -> PlannedDocument:
    planned = PlannedDocument(label)
    api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    if (api_version, kind) in UNCOVERED_KINDS:
        planned.uncovered = UNCOVERED_KINDS[(api_version, kind)]
        return planned
    planned.items.append(CheckItem(key, "resource", doc))
    if str(api_version).startswith("sailoperator.io/"):
        planned.items.extend(sail_values_items(doc, key))
        planned.findings.extend(sail_ztunnel_findings(doc, upstream))
    return planned


def sail_values_items(doc: dict[str, Any], key: str) -> list[CheckItem]:
    """spec.values of a Sail CR against Istio's Values type too (besides the Sail CRD's own schema): the
    checker's type also enforces the env-as-string rule and reports unknown keys by their path."""
    values = (doc.get("spec") or {}).get("values")
    if not isinstance(values, dict):
        return []
    kind = doc.get("kind")
    if kind == "Istio":
        return [CheckItem(f"{key}/values", "istio-values", values, strict_env=True)]
    if kind == "IstioCNI":
        subset = {k: values[k] for k in ("cni", "global") if k in values}
        return [CheckItem(f"{key}/values", "istio-values", subset, strict_env=True)] if subset else []
    if kind == "ZTunnel" and "global" in values:
        return [CheckItem(f"{key}/values", "istio-values", {"global": values["global"]}, strict_env=True)]
    return []


def ztunnel_block_findings(block: Any, path: str, chart_dir: Path | None, env_rule: str) -> list[Finding]:
    """`values.ztunnel` is free-form in the Values proto; its keys are the ztunnel chart's values."""
    if not isinstance(block, dict) or chart_dir is None:
        return []
    findings = [Finding(f"{path}.{f.path}", f.message) for f in check_chart_values(chart_dir, block)]
    return findings + env_values_are_strings(block, path, env_rule)


def sail_ztunnel_findings(doc: dict[str, Any], upstream: Upstream) -> list[Finding]:
    values = (doc.get("spec") or {}).get("values") or {}
    if doc.get("kind") != "ZTunnel":
        return []
    # The chart the target's Sail operator vendors (Red Hat's for OSSM) is what renders these values.
    chart_dir = upstream.sail_chart_dir("ztunnel")
    return ztunnel_block_findings(values.get("ztunnel"), "spec.values.ztunnel", chart_dir, SAIL_ENV_RULE)


def is_istioctl_install(command: list[str] | None) -> bool:
    return command is not None and command[:2] == ["istioctl", "install"]


def istio_operator_document(step: Any, label: str, key: str, upstream: Upstream) -> PlannedDocument:
    iop = dict(step.istio_operator or {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator"})
    overlay = set_flags(step.command or [])
    if overlay:
        iop["spec"] = deep_merge(dict(iop.get("spec") or {}), overlay)
    planned = PlannedDocument(label, items=[CheckItem(key, "istio-operator", iop)])
    values = (iop.get("spec") or {}).get("values")
    planned.findings += env_values_are_strings(values, "spec.values", MESHPROOF_ENV_RULE)
    if isinstance(values, dict):
        chart_dir = upstream.chart_dir("ztunnel")
        planned.findings += ztunnel_block_findings(
            values.get("ztunnel"), "spec.values.ztunnel", chart_dir, ""
        )
    return planned


def helm_document(step: Any, upstream: Upstream, label: str, key: str) -> PlannedDocument:
    chart = str(step.helm_chart).rstrip("/").split("/")[-1]
    values = deep_merge(dict(step.helm_values or {}), set_flags(step.command or []))
    planned = PlannedDocument(label)
    if chart in UNCOVERED_CHARTS:
        planned.uncovered = UNCOVERED_CHARTS[chart]
        return planned
    chart_dir = upstream.chart_dir(chart)
    if chart_dir is None:
        planned.findings.append(
            Finding("", f"no upstream definition fetched for Helm chart {step.helm_chart!r}")
        )
        return planned
    planned.findings += check_chart_values(chart_dir, values)
    if chart in ISTIO_CHARTS:
        planned.findings += env_values_are_strings(values, "", MESHPROOF_ENV_RULE)
        if isinstance(values.get("global"), dict):
            planned.items.append(CheckItem(f"{key}/global", "istio-values", {"global": values["global"]}))
        if isinstance(values.get("meshConfig"), dict):
            planned.items.append(CheckItem(f"{key}/meshConfig", "mesh-config", values["meshConfig"]))
    return planned


def kind_config_document(config: dict[str, Any], label: str, key: str) -> PlannedDocument:
    return PlannedDocument(label, items=[CheckItem(key, "kind-config", config)])


def set_flags(command: list[str]) -> dict[str, Any]:
    """`--set a.b=c` / `--set-string` flags of a helm or istioctl command as a nested map (Helm typing)."""
    tree: dict[str, Any] = {}
    args = list(command)
    for i, arg in enumerate(args):
        flag, _, inline = arg.partition("=")
        if flag not in ("--set", "--set-string"):
            continue
        assignment = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
        for part in split_unescaped(assignment, ","):
            path, eq, raw = part.partition("=")
            if not eq:
                continue
            value: Any = raw if flag == "--set-string" else helm_scalar(raw)
            node = tree
            keys = split_unescaped(path, ".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
    return tree


def split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def helm_scalar(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = deep_merge(dict(base[k]), v)
        else:
            base[k] = v
    return base
