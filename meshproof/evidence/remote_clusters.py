"""`istioctl remote-clusters`: which clusters each istiod watches, and whether it has synced them.

istioctl 1.27 prints istiod's `debug/clusterz` as a text/tabwriter table `NAME SECRET STATUS ISTIOD`
(istio@1.27.9 istioctl/pkg/proxyconfig/clusters.go writeMulticlusterStatus); STATUS is `syncing`, `synced`,
`timeout` or `closed` (pkg/kube/multicluster/secretcontroller.go). The config cluster's SECRET is empty,
so rows are read by the header's column offsets, never by splitting on whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshproof.evidence.collect import Istioctl
from meshproof.evidence.errors import EvidenceCollectionError, EvidenceParseError

COLUMNS = ("NAME", "SECRET", "STATUS", "ISTIOD")


@dataclass(frozen=True)
class RemoteCluster:
    name: str
    secret: str  # "<namespace>/<secret name>", empty for the cluster istiod runs in
    status: str
    istiod: str


def parse_remote_clusters(text: str) -> list[RemoteCluster]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise EvidenceParseError("istioctl remote-clusters printed nothing (not even its header)")
    header = lines[0]
    if header.split() != list(COLUMNS):
        raise EvidenceParseError(
            f"unexpected remote-clusters header {header!r}; expected {' '.join(COLUMNS)}"
        )
    starts = [header.index(column) for column in COLUMNS]
    rows = []
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        if not cells[0] or not cells[2]:
            raise EvidenceParseError(f"remote-clusters row without NAME or STATUS: {line!r}")
        rows.append(RemoteCluster(*cells))
    return rows


def remote_clusters(istioctl: Istioctl, istio_namespace: str) -> list[RemoteCluster]:
    """`istioctl remote-clusters -i <istio namespace>` against the istioctl's cluster."""
    text = istioctl.output(["remote-clusters", "-i", istio_namespace])
    try:
        return parse_remote_clusters(text)
    except EvidenceParseError as exc:
        raise EvidenceCollectionError(f"istioctl remote-clusters: {exc}") from exc
