"""Checks over ambient-mode evidence: ztunnel's workload table, metrics and access logs.

XFCC cannot prove mTLS in ambient (istio-facts §0 trap 5); these read what ztunnel itself reports
(facts §3.3): the HBONE protocol per workload, `istio_tcp_*` metrics with
`connection_security_policy="mutual_tls"` and principals, and access log identities, which ztunnel logs
only for mTLS connections. Counters are cumulative, so pass a `baseline` scrape taken before the traffic
to judge only what the test's own traffic added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from meshproof.checks.verdict import Verdict
from meshproof.evidence.prometheus import TCP_CLOSED, TCP_OPENED, MetricSample, select, total
from meshproof.evidence.ztunnel_config import ZtunnelWorkload
from meshproof.evidence.ztunnel_logs import POLICY_REJECTION, AccessLogRecord

HBONE = "HBONE"
MUTUAL_TLS = "mutual_tls"
UNKNOWN = "unknown"  # ztunnel's value for any missing label (output-formats §4.1)


def hbone_for_workload(workloads: Sequence[ZtunnelWorkload], pod_name: str, namespace: str) -> Verdict:
    """ztunnel captures the pod: its workload entry says protocol HBONE (facts §2.2, §3.3 step 1).

    Necessary for ambient mTLS, not sufficient: HBONE does not mean plaintext is refused.
    """
    matches = [w for w in workloads if w.name == pod_name and w.namespace == namespace]
    if not matches:
        known = sorted({w.namespace for w in workloads})
        return Verdict.failed(
            f"ztunnel has no workload {namespace}/{pod_name} (namespaces it knows: {known})"
        )
    workload = matches[0]
    if workload.protocol != HBONE:
        return Verdict.failed(
            f"{namespace}/{pod_name} has protocol {workload.protocol}, not HBONE: not captured"
        )
    waypoint = f", waypoint {workload.waypoint}" if workload.waypoint else ""
    return Verdict.passed(f"{namespace}/{pod_name} is HBONE on node {workload.node}{waypoint}")


def ztunnel_saw_mtls(
    samples: Sequence[MetricSample],
    src_identity: str,
    dst_identity: str | None = None,
    *,
    baseline: Sequence[MetricSample] | None = None,
) -> Verdict:
    """The destination ztunnel opened mTLS connections from `src_identity` (to `dst_identity`).

    Reads `istio_tcp_connections_opened_total{reporter="destination",
    connection_security_policy="mutual_tls", source_principal=<src>[, destination_principal=<dst>]}`;
    source_principal is only set for mTLS (output-formats §4.1).
    """
    labels = {
        "reporter": "destination",
        "connection_security_policy": MUTUAL_TLS,
        "source_principal": src_identity,
    }
    if dst_identity is not None:
        labels["destination_principal"] = dst_identity
    return _counter_grew(samples, baseline, TCP_OPENED, labels, "mTLS connections")


def ztunnel_saw_plaintext(
    samples: Sequence[MetricSample],
    dst_identity: str,
    *,
    baseline: Sequence[MetricSample] | None = None,
) -> Verdict:
    """The destination ztunnel accepted plaintext connections to `dst_identity` (no source principal).

    The PERMISSIVE control: `connection_security_policy="unknown"` and `source_principal="unknown"` on
    the destination side (ztunnel never writes "none"; output-formats §4.1).
    """
    labels = {
        "reporter": "destination",
        "connection_security_policy": UNKNOWN,
        "source_principal": UNKNOWN,
        "destination_principal": dst_identity,
    }
    return _counter_grew(samples, baseline, TCP_OPENED, labels, "plaintext connections")


def ztunnel_denied_connections(
    samples: Sequence[MetricSample],
    dst_identity: str,
    src_identity: str | None = None,
    *,
    baseline: Sequence[MetricSample] | None = None,
) -> Verdict:
    """The destination ztunnel closed connections with `response_flags="DENY"` (an authorization deny).

    DENY is only set on the destination side's closed counter (output-formats §4.1 asymmetry).
    """
    labels = {"reporter": "destination", "response_flags": "DENY", "destination_principal": dst_identity}
    if src_identity is not None:
        labels["source_principal"] = src_identity
    return _counter_grew(samples, baseline, TCP_CLOSED, labels, "denied connections")


def _counter_grew(
    samples: Sequence[MetricSample],
    baseline: Sequence[MetricSample] | None,
    name: str,
    labels: Mapping[str, str],
    what: str,
) -> Verdict:
    now = total(select(samples, name, labels))
    before = total(select(baseline, name, labels)) if baseline is not None else 0.0
    wanted = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    if now > before:
        since = f" since the baseline ({before:g} before)" if baseline is not None else ""
        return Verdict.passed(f"{now - before:g} {what}{since}: {name}{{{wanted}}}")
    seen = sorted({s.labels.get("connection_security_policy", "?") for s in select(samples, name)})
    return Verdict.failed(
        f"no new {what}: {name}{{{wanted}}} is {now:g} (baseline {before:g}); "
        f"connection_security_policy values present: {seen or 'none'}"
    )


def ztunnel_access_log_identity(
    records: Sequence[AccessLogRecord],
    src_identity: str,
    dst_identity: str | None = None,
    *,
    direction: str = "inbound",
) -> Verdict:
    """A successful `connection complete` record with `src.identity` = the client (facts §3.3 step 2).

    ztunnel writes src.identity/dst.identity only for mTLS connections, so its presence is the proof.
    """
    complete = [r for r in records if r.message == "connection complete" and r.direction == direction]
    for record in complete:
        if (
            record.error is None
            and record.src_identity == src_identity
            and (dst_identity is None or record.dst_identity == dst_identity)
        ):
            target = record.dst_identity or record.dst_workload
            return Verdict.passed(
                f"{direction} connection from {src_identity} to {target} logged at {record.time}"
            )
    seen = sorted({str(r.src_identity) for r in complete})
    return Verdict.failed(
        f"no successful {direction} 'connection complete' record with src.identity={src_identity}"
        + (f" and dst.identity={dst_identity}" if dst_identity else "")
        + f" among {len(records)} access records (src.identity seen: {seen[:5]})"
    )


def ztunnel_access_log_plaintext(records: Sequence[AccessLogRecord], dst_workload: str) -> Verdict:
    """A successful inbound connection to `dst_workload` logged without src.identity (= plaintext)."""
    for record in records:
        if (
            record.message == "connection complete"
            and record.direction == "inbound"
            and record.error is None
            and record.dst_workload == dst_workload
            and record.src_identity is None
        ):
            return Verdict.passed(f"plaintext inbound to {dst_workload} from {record.fields.get('src.addr')}")
    return Verdict.failed(f"no successful inbound record to {dst_workload} without src.identity")


def policy_rejection_logged(
    records: Sequence[AccessLogRecord],
    *,
    denied_by: str | None = None,
    none_allowed: bool = False,
    src_identity: str | None = None,
    dst_workload: str | None = None,
) -> Verdict:
    """The destination ztunnel logged `connection closed due to policy rejection` (output-formats §4.2).

    `denied_by="<ns>/<policy>"` requires "explicitly denied by: <ns>/<policy>" (a DENY hit; plaintext into
    STRICT shows istio-system/istio_converted_static_strict); `none_allowed` requires "allow policies
    exist, but none allowed" (an ALLOW miss). Early-deny `connection failed` lines name no workload, so
    they match any `dst_workload`.
    """
    if denied_by is not None and none_allowed:
        raise ValueError("denied_by and none_allowed describe different rejections; pass one")
    expected = POLICY_REJECTION
    if denied_by is not None:
        expected = f"{POLICY_REJECTION}: explicitly denied by: {denied_by}"
    elif none_allowed:
        expected = f"{POLICY_REJECTION}: allow policies exist, but none allowed"
    rejections = [r for r in records if r.error and POLICY_REJECTION in r.error]
    for record in rejections:
        error = record.error or ""
        if not (error == expected or error.startswith(expected)):
            continue
        if src_identity is not None and record.src_identity != src_identity:
            continue
        if dst_workload is not None and record.dst_workload not in (None, dst_workload):
            continue
        return Verdict.passed(f"ztunnel logged {error!r} at {record.time}")
    seen = sorted({r.error or "" for r in rejections})
    return Verdict.failed(
        f"no access record with error {expected!r}; policy rejections seen: {seen[:3] or 'none'}"
    )
