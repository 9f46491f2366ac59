"""Every manifest every `meshproof plan` renders, server-side dry-run applied against a real apiserver.

The real kube-apiserver v1.34.4 decodes each document strictly, runs the built-in validation of core kinds
(which the contract tier cannot import from k8s.io/kubernetes) and, for the Istio 1.27.9, Gateway API
v1.3.0 and GIE CRDs, their OpenAPI schemas and CEL rules; istiod's validating webhook sees the Istio kinds.
Sail documents (every installer=sail plan) meet OSSM 3.2's Sail CRDs (release-3.2, ZTunnel v1 and
v1alpha1): what OpenShift runs; upstream Sail on kind is checked per variant by the contract tier. What
it does not prove: that an operator reconciles them, that images pull, anything at run time. Kinds whose
definitions the tier does not install are listed in NOT_SERVED with the reason; the contract tier checks
those against the upstream definitions (tests/contract). Plans: the contract tier's full matrix.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from contract.test_rendered_manifests_match_upstream import valid_plans
from fixtures_data.control_plane import ControlPlane

from meshproof.kube import Cluster

pytestmark = pytest.mark.control_plane

# API groups of rendered documents the tier serves no definition for, and why.
NOT_SERVED = {
    "operators.coreos.com": "OLM's CRDs: OpenShift only",
    "cert-manager.io": "cert-manager's CRDs come from its chart at install time",
    "operator.openshift.io": "the OpenShift cert-manager operator's IstioCSR is served nowhere reachable",
}


def group_of(doc: dict[str, Any]) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def rendered_documents() -> dict[str, dict[str, Any]]:
    """Each distinct document of every valid plan, labelled by the first plan and step that rendered it."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for plan in valid_plans():
        for index, step in enumerate(plan.steps):
            for doc in step.manifests:
                key = json.dumps(doc, sort_keys=True)
                if key not in found:
                    meta = doc.get("metadata") or {}
                    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
                    label = (
                        f"{plan.combination} step {index + 1}: {doc.get('kind')} {where}{meta.get('name')}"
                    )
                    found[key] = (label, doc)
    return dict(found.values())


def test_every_rendered_manifest_passes_a_server_side_dry_run(
    cluster: Cluster, control_plane: ControlPlane
) -> None:
    documents = rendered_documents()
    served = {label: doc for label, doc in documents.items() if group_of(doc) not in NOT_SERVED}
    assert len(served) > 100, f"only {len(served)} rendered documents to check"
    assert any(group_of(d) == "sailoperator.io" for d in served.values()), "no Sail document checked"
    # the plans' namespaces exist (as they would once the plan's first steps ran); they carry the run label
    namespaces = sorted(
        {str(d["metadata"]["namespace"]) for d in served.values() if d["metadata"].get("namespace")}
    )
    existing = {n["metadata"]["name"] for n in cluster.list("v1", "Namespace")}
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
            for n in namespaces
            if n not in existing
        ]
    )

    refused = dry_run_refusals(control_plane, served)
    assert refused == {}, f"{len(refused)} of {len(served)} refused:\n" + "\n".join(
        f"{k}: {v}" for k, v in refused.items()
    )


def dry_run_refusals(control_plane: ControlPlane, docs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """All documents in one kubectl call; only when that fails, one call each to name the refused ones."""
    if control_plane.dry_run(list(docs.values()))[0]:
        return {}
    return {
        label: why
        for label, doc in docs.items()
        if not (result := control_plane.dry_run([doc]))[0]
        for why in [result[1]]
    }


def test_not_served_groups_are_only_the_documented_ones() -> None:
    """Guard: a new kind without a definition here must be added to NOT_SERVED with a reason, not slip by."""
    groups = {group_of(d) for d in rendered_documents().values()}
    assert set(NOT_SERVED) <= groups, f"NOT_SERVED names groups no plan renders: {set(NOT_SERVED) - groups}"


def test_the_dry_run_refuses_a_broken_document(control_plane: ControlPlane) -> None:
    """Negative control for the check above: a rendered Gateway with a field its v1.3.0 schema lacks is
    refused by the same command, so a pass above is the schema's verdict."""
    gateway = next(
        d
        for d in rendered_documents().values()
        if d.get("kind") == "Gateway" and group_of(d) == "gateway.networking.k8s.io"
    )
    bad = json.loads(json.dumps(gateway))
    bad["spec"]["listeners"][0]["protocol"] = 7
    done = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(bad), check=False
    )
    assert done.returncode != 0 and "protocol" in done.stderr
