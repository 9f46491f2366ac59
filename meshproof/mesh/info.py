"""MeshInfo: what the tests need to know about the installed mesh (the `mesh` fixture's value).

Namespaces, revision, trust domain and the labels that enroll a namespace, all derived from the MeshSpec
so a test never hard-codes `istio-system` or `ztunnel`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from meshproof.config import Feature
from meshproof.mesh.spec import MeshSpec

# istio-facts §2.1, §2.2
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"


class MeshInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: MeshSpec
    istio_namespace: str
    root_namespace: str  # mesh-wide policies live here (= the Istio namespace, istio-facts §3.1)
    cni_namespace: str | None
    ztunnel_namespace: str | None
    revision: str
    trust_domain: str
    istiod_deployment: str
    clusters: tuple[str, ...]
    gie_api_version: str | None

    @classmethod
    def from_spec(cls, spec: MeshSpec) -> MeshInfo:
        return cls(
            spec=spec,
            istio_namespace=spec.istio_namespace,
            root_namespace=spec.istio_namespace,
            cni_namespace=spec.cni_namespace,
            ztunnel_namespace=spec.ztunnel_namespace,
            revision=spec.revision,
            trust_domain=spec.trust_domain,
            istiod_deployment=spec.istiod_deployment,
            clusters=tuple(c.name for c in spec.clusters),
            gie_api_version=spec.gie_api_version,
        )

    @property
    def mode(self) -> str:
        return self.spec.mode

    def has(self, feature: Feature | str) -> bool:
        return self.spec.has(feature)

    def sidecar_labels(self) -> dict[str, str]:
        """Namespace labels for sidecar injection. `istio-injection=enabled` selects the revision or tag named
        `default`, which every install here has (an InPlace revision, or the IstioRevisionTag)."""
        return {INJECTION_LABEL: "enabled"}

    def revision_labels(self) -> dict[str, str]:
        return {REVISION_LABEL: self.revision}

    def ambient_labels(self) -> dict[str, str]:
        return {DATAPLANE_MODE_LABEL: "ambient"}

    def enrollment_labels(self) -> dict[str, str]:
        """The labels that put a namespace into this mesh's mode."""
        return self.ambient_labels() if self.spec.ambient else self.sidecar_labels()

    def waypoint_labels(self, waypoint: str = "waypoint") -> dict[str, str]:
        """Labels that send a namespace's (or service's) traffic through a waypoint (istio-facts §2.3)."""
        return {USE_WAYPOINT_LABEL: waypoint}

    def spiffe_id(self, namespace: str, service_account: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/{service_account}"
