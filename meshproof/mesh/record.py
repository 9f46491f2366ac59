"""The install record: a ConfigMap holding the MeshSpec fingerprint, written last by every install.

A later run compares the fingerprint in the cluster with its own spec: equal means the mesh is there and
matches; different means someone (an earlier run) installed something else; absent means no complete
meshproof install. `read_record` is the only cluster access here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshproof.mesh.model import PlanStep
from meshproof.mesh.spec import ClusterSpec, MeshSpec
from meshproof.mesh.templates import render

if TYPE_CHECKING:
    from meshproof.kube import Cluster

RECORD_NAMESPACE = "meshproof-system"
RECORD_NAME = "meshproof-install"


@dataclass(frozen=True)
class InstallRecord:
    fingerprint: str
    summary: str
    spec_json: str

    def matches(self, spec: MeshSpec) -> bool:
        return self.fingerprint == spec.fingerprint()

    def spec(self, contexts: Mapping[str, str | None]) -> MeshSpec:
        """The recorded spec; kube contexts (not part of the record) come from `contexts` by cluster name."""
        recorded = MeshSpec.model_validate_json(self.spec_json)
        clusters = tuple(c.model_copy(update={"context": contexts.get(c.name)}) for c in recorded.clusters)
        return recorded.model_copy(update={"clusters": clusters})


def record_step(spec: MeshSpec, cluster: ClusterSpec) -> PlanStep:
    return PlanStep(
        title="Record the install fingerprint (ConfigMap meshproof-install)",
        cluster=cluster.name,
        manifests=render(
            "mesh/install-record.yaml.j2",
            namespace=RECORD_NAMESPACE,
            name=RECORD_NAME,
            fingerprint=spec.fingerprint(),
            summary=spec.summary(),
            spec_json=spec.canonical_json(),
        ),
    )


def record_from_configmap(obj: dict[str, Any] | None) -> InstallRecord | None:
    """The record in a ConfigMap object, or None when there is none (or it is not ours)."""
    if not obj:
        return None
    data = obj.get("data") or {}
    fingerprint = data.get("fingerprint")
    if not fingerprint:
        return None
    return InstallRecord(str(fingerprint), str(data.get("summary", "")), str(data.get("spec.json", "")))


def read_record(cluster: Cluster) -> InstallRecord | None:
    return record_from_configmap(cluster.get("v1", "ConfigMap", RECORD_NAME, RECORD_NAMESPACE))
