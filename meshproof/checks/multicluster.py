"""Verdicts for one mesh over two clusters: which cluster served, whether istiod synced its peer, whether
ztunnel knows the other network's workloads. Pure: inputs come from meshproof.evidence and traffic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from meshproof.checks.verdict import Verdict
from meshproof.evidence.remote_clusters import RemoteCluster
from meshproof.evidence.ztunnel_config import ZtunnelWorkload
from meshproof.traffic import Response

SYNCED = "synced"


def serving_clusters(
    responses: Sequence[Response], pods_by_cluster: Mapping[str, Iterable[str]]
) -> Counter[str]:
    """Replies per cluster, by the pod (fortio's hostname) that answered; unknown pods count as '?'."""
    owner = {pod: cluster for cluster, pods in pods_by_cluster.items() for pod in pods}
    return Counter(owner.get(r.server_hostname or "", "?") for r in responses if r.status == 200)


def served_only_by(
    responses: Sequence[Response], pods_by_cluster: Mapping[str, Iterable[str]], clusters: set[str]
) -> Verdict:
    """Every request got a 200 from a known pod, and the clusters that served are exactly `clusters`."""
    pods_by_cluster = {c: list(p) for c, p in pods_by_cluster.items()}
    failed = [r for r in responses if r.status != 200]
    if failed:
        first = failed[0]
        return Verdict.failed(
            f"{len(failed)} of {len(responses)} requests failed (first: status {first.status}, "
            f"{first.transport_error.value} {first.error_message[:120]})"
        )
    served = serving_clusters(responses, pods_by_cluster)
    if "?" in served:
        unknown = sorted(
            {r.server_hostname or "(no hostname)" for r in responses}
            - {p for pods in pods_by_cluster.values() for p in pods}
        )
        return Verdict.failed(f"replies from pods of neither cluster: {unknown}")
    if set(served) != clusters:
        return Verdict.failed(f"served by {dict(served)}, expected exactly {sorted(clusters)}")
    return Verdict.passed(f"{len(responses)} replies served by {dict(sorted(served.items()))}")


def none_served(responses: Sequence[Response]) -> Verdict:
    """No request got an answer from a server: the call fails (no endpoint, refused, reset, 503)."""
    served = [r for r in responses if r.status == 200]
    if served:
        return Verdict.failed(
            f"{len(served)} of {len(responses)} requests served (by {served[0].server_hostname})"
        )
    outcomes = Counter(str(r.status) if r.status else r.transport_error.value for r in responses)
    return Verdict.passed(f"none of {len(responses)} requests served: {dict(outcomes)}")


def peer_synced(rows: Sequence[RemoteCluster], peer: str) -> Verdict:
    """istiod lists `peer` from a remote secret with STATUS synced."""
    row = next((r for r in rows if r.name == peer), None)
    if row is None:
        return Verdict.failed(f"istiod does not list cluster {peer} (lists {[r.name for r in rows]})")
    if not row.secret:
        return Verdict.failed(f"{peer} is listed without a remote secret: it is istiod's own cluster")
    if row.status != SYNCED:
        return Verdict.failed(f"{peer} ({row.secret}) is {row.status}, not {SYNCED}")
    return Verdict.passed(f"{row.istiod} synced {peer} from {row.secret}")


def own_cluster_listed(rows: Sequence[RemoteCluster], own: str) -> Verdict:
    """istiod lists its own cluster `own`, without a remote secret (the config cluster's row)."""
    row = next((r for r in rows if r.name == own), None)
    if row is None:
        return Verdict.failed(f"istiod does not list its own cluster {own} (lists {[r.name for r in rows]})")
    if row.secret:
        return Verdict.failed(f"istiod lists its own cluster {own} from a remote secret {row.secret}")
    return Verdict.passed(f"{row.istiod} lists its own cluster {own} without a remote secret")


def peer_absent(rows: Sequence[RemoteCluster], peer: str) -> Verdict:
    """istiod no longer watches `peer` (its remote secret is gone)."""
    row = next((r for r in rows if r.name == peer), None)
    if row is not None:
        return Verdict.failed(f"istiod still lists {peer} ({row.secret}, {row.status})")
    return Verdict.passed(f"istiod lists no cluster {peer} (lists {[r.name for r in rows]})")


def workloads_on_network(
    workloads: Sequence[ZtunnelWorkload], namespace: str, pods: Iterable[str], network: str
) -> Verdict:
    """ztunnel knows each of `pods` (in `namespace`) as a workload on `network`."""
    wanted = set(pods)
    if not wanted:
        return Verdict.failed("no pods to look for")
    found = {w.name: w for w in workloads if w.namespace == namespace and w.name in wanted}
    missing = sorted(wanted - set(found))
    if missing:
        return Verdict.failed(f"ztunnel does not know {missing} in {namespace} ({len(workloads)} workloads)")
    wrong = {n: w.network for n, w in found.items() if w.network != network}
    if wrong:
        return Verdict.failed(f"ztunnel places {wrong}, expected network {network}")
    clusters = sorted({w.cluster_id for w in found.values()})
    return Verdict.passed(f"ztunnel knows {sorted(found)} on {network} (cluster {', '.join(clusters)})")
