"""Is an Istio control plane already running in a cluster? Read from the marks a mesh leaves, however it
was installed.

A Deployment named `istiod` is only one way a control plane runs: a revisioned install names it
`istiod-<rev>`, the Sail operator (OSSM 3) manages it through an `Istio` resource, and an istiod run outside
the cluster leaves no Deployment at all. What every running istiod leaves is its own mark: the mesh
ConfigMap (`istio`, or `istio-<rev>`) and the root certificate it publishes (`istio-ca-root-cert`), the
validating and mutating webhook configurations whose webhooks are named `…validation.istio.io` and
`…sidecar-injector.istio.io`, and istiod pods labelled `app=istiod` (with `istio.io/rev`). Any one of them
means a mesh is there.

`find_mesh_marks` is the only cluster access here (reads only); `marks_in` classifies objects already
fetched, so the decision is tested on real shapes without a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meshproof.kube_api import ObjectGetter, ObjectLister
from meshproof.kube_connect import ClusterError, ClusterUnreachable, KubeApiError
from meshproof.kube_objects import RUN_ID_LABEL

Obj = Mapping[str, Any]

WEBHOOK_API = "admissionregistration.k8s.io/v1"
SAIL_API = "sailoperator.io/v1"
ISTIOD_SELECTOR = "app=istiod"  # istiod's pods and Deployment, whatever the revision
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
# The mesh ConfigMap: `istio` for the default revision, `istio-<rev>` otherwise; it holds the key `mesh`.
_MESH_CONFIGMAP = re.compile(r"^istio(-[a-z0-9.-]+)?$")
# Names istiod gives its webhooks (istio-discovery chart: rev.validation.istio.io, validation.istio.io,
# rev.namespace.sidecar-injector.istio.io, ...).
_ISTIO_WEBHOOK = re.compile(r"(^|\.)(validation|sidecar-injector)\.istio\.io$")


class MeshReader(ObjectGetter, ObjectLister, Protocol):
    """What the marks are read with; `meshproof.kube.Cluster` provides it."""


@dataclass(frozen=True)
class MeshMarks:
    """What shows a control plane is present, one short phrase per object, and whether meshproof started
    it (its Istio namespace carries meshproof's run label: an earlier run's install that did not finish)."""

    found: tuple[str, ...] = ()
    started_by_meshproof: bool = False

    def __bool__(self) -> bool:
        return bool(self.found)

    def summary(self, limit: int = 4) -> str:
        shown = list(self.found[:limit])
        if len(self.found) > limit:
            shown.append(f"{len(self.found) - limit} more")
        return ", ".join(shown) or "nothing"


# --- classification (pure) ----------------------------------------------------------------------------


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _where(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name', '?')}" if meta.get("namespace") else _name(obj)


def _rev(obj: Obj) -> str:
    rev = ((obj.get("metadata") or {}).get("labels") or {}).get("istio.io/rev")
    return f", istio.io/rev={rev}" if rev else ""


def is_istio_webhook_configuration(obj: Obj) -> bool:
    return any(_ISTIO_WEBHOOK.search(str(w.get("name", ""))) for w in obj.get("webhooks") or [])


def marks_in(
    *,
    configmaps: Iterable[Obj] = (),
    webhook_configurations: Iterable[Obj] = (),
    istiod_pods: Iterable[Obj] = (),
    istiod_deployments: Iterable[Obj] = (),
    sail_istios: Iterable[Obj] = (),
    namespace: Obj | None = None,
) -> MeshMarks:
    """The marks among objects already read: ConfigMaps of the Istio namespace, every webhook
    configuration, the pods and Deployments labelled app=istiod, Sail `Istio` resources, the namespace."""
    found: list[str] = []
    for cm in configmaps:
        name = _name(cm)
        if name == ROOT_CERT_CONFIGMAP or (_MESH_CONFIGMAP.match(name) and "mesh" in (cm.get("data") or {})):
            found.append(f"ConfigMap {_where(cm)}")
    for hook in webhook_configurations:
        if is_istio_webhook_configuration(hook):
            found.append(f"{hook.get('kind', 'WebhookConfiguration')} {_name(hook)}")
    for deployment in istiod_deployments:
        found.append(f"Deployment {_where(deployment)} (app=istiod{_rev(deployment)})")
    for pod in istiod_pods:
        found.append(f"pod {_where(pod)} (app=istiod{_rev(pod)})")
    for istio in sail_istios:
        version = (istio.get("spec") or {}).get("version")
        found.append(f"Sail Istio {_name(istio)}" + (f" ({version})" if version else ""))
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return MeshMarks(tuple(found), started_by_meshproof=bool(found) and RUN_ID_LABEL in labels)


# --- reading them from a cluster ----------------------------------------------------------------------


def find_mesh_marks(cluster: MeshReader, istio_namespace: str) -> MeshMarks:
    """Read the marks (a handful of bounded GET/LIST calls; nothing is changed).

    An API the cluster does not serve (no Sail CRDs) means none of that kind; any other error (no access,
    no answer) propagates: not being able to look is not the same as finding nothing.
    """
    webhooks = [
        *_listed(cluster, WEBHOOK_API, "ValidatingWebhookConfiguration"),
        *_listed(cluster, WEBHOOK_API, "MutatingWebhookConfiguration"),
    ]
    return marks_in(
        configmaps=_listed(cluster, "v1", "ConfigMap", namespace=istio_namespace),
        webhook_configurations=webhooks,
        istiod_deployments=_listed(cluster, "apps/v1", "Deployment", label_selector=ISTIOD_SELECTOR),
        istiod_pods=_listed(cluster, "v1", "Pod", label_selector=ISTIOD_SELECTOR),
        sail_istios=_listed(cluster, SAIL_API, "Istio"),
        namespace=cluster.get("v1", "Namespace", istio_namespace),
    )


def _listed(
    cluster: MeshReader,
    api_version: str,
    kind: str,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    try:
        items = cluster.list(api_version, kind, namespace=namespace, label_selector=label_selector)
    except (KubeApiError, ClusterUnreachable):
        raise
    except ClusterError:  # the kind is not served here (its CRD is not installed)
        return []
    for item in items:
        item.setdefault("kind", kind)
    return items
