"""Checks over ambient-mode evidence: ztunnel's workload table, metrics and access logs.

XFCC cannot prove mTLS in ambient (istio-facts §0 trap 5); these read what ztunnel itself reports
(facts §3.3): the HBONE protocol per workload, `istio_tcp_*` metrics with
`connection_security_policy="mutual_tls"` and principals, and access log identities, which ztunnel logs
only for mTLS connections. Counters are cumulative, so pass a `baseline` scrape taken before the traffic
to judge only what the test's own traffic added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshproof.checks.verdict import Verdict
from meshproof.evidence.prometheus import TCP_CLOSED, TCP_OPENED, MetricSample, select, total
from meshproof.evidence.ztunnel_config import ZtunnelWorkload
from meshproof.evidence.ztunnel_logs import POLICY_REJECTION, AccessLogRecord

ALLOW_MISS = "allow policies exist, but none allowed"
EXPLICITLY_DENIED = "explicitly denied by:"
STRICT_POLICY_NAME = "istio_converted_static_strict"  # istiod's DENY for PeerAuthentication STRICT

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
    """The destination ztunnel opened plaintext connections to `dst_identity` (no source principal).

    `connection_security_policy="unknown"` and `source_principal="unknown"` on the destination side
    (ztunnel never writes "none"; output-formats §4.1). This proves a plaintext attempt reached ztunnel,
    not that ztunnel accepted it: the opened counter grows before the policy check, so plaintext that
    STRICT then rejects counts too (captures/ztunnel-1.27.9 case 07). Pair it with
    `ztunnel_access_log_plaintext` (a completed record) to prove acceptance.
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


def ztunnel_access_log_plaintext(
    records: Sequence[AccessLogRecord], dst_workload: str, *, src_ip: str | None = None
) -> Verdict:
    """ztunnel completed a plaintext inbound connection to `dst_workload` (from `src_ip`): a `connection
    complete` record without error and without identities (ztunnel logs `src.identity` and
    `dst.identity` only for mTLS; captures/ztunnel-1.27.9 cases 07/08). A rejected plaintext attempt
    has the same missing identities but an `error`, so it does not count."""
    for record in records:
        if (
            record.message == "connection complete"
            and record.direction == "inbound"
            and record.error is None
            and record.dst_workload == dst_workload
            and record.src_identity is None
            and record.dst_identity is None
            and (src_ip is None or record.src_ip == src_ip)
        ):
            return Verdict.passed(f"plaintext inbound to {dst_workload} from {record.fields.get('src.addr')}")
    failed = [
        r
        for r in records
        if r.dst_workload == dst_workload
        and r.src_identity is None
        and r.error
        and (src_ip is None or r.src_ip == src_ip)
    ]
    note = f"; rejected plaintext attempts: {sorted({r.error or '' for r in failed})[:2]}" if failed else ""
    source = f" from {src_ip}" if src_ip else ""
    return Verdict.failed(f"no completed inbound record to {dst_workload}{source} without identities{note}")


@dataclass(frozen=True)
class PolicyRejection:
    """The reason the destination ztunnel gives when it closes a connection for policy (ztunnel@1.27.9
    src/proxy.rs AuthorizationRejectionError): a DENY policy that matched, named `<ns>/<name>`, or
    ALLOW policies of which none matched (then no policy is named).

    Plaintext into STRICT is a DENY by `<root ns>/istio_converted_static_strict`, the policy istiod
    generates for PeerAuthentication STRICT (captures/ztunnel-1.27.9 case 07).
    """

    policy: str | None = None  # "<ns>/<name>" of the matching DENY; None: no ALLOW matched

    @classmethod
    def denied_by(cls, namespace: str, name: str) -> PolicyRejection:
        if not namespace or not name:
            raise ValueError("a DENY rejection names its policy as <namespace>/<name>")
        return cls(f"{namespace}/{name}")

    @classmethod
    def no_allow_matched(cls) -> PolicyRejection:
        return cls(None)

    @classmethod
    def strict_mtls(cls, root_namespace: str) -> PolicyRejection:
        return cls.denied_by(root_namespace, STRICT_POLICY_NAME)

    @property
    def error(self) -> str:
        """The exact `error=` value ztunnel writes for this rejection."""
        if self.policy is None:
            return f"{POLICY_REJECTION}: {ALLOW_MISS}"
        return f"{POLICY_REJECTION}: {EXPLICITLY_DENIED} {self.policy}"

    def __str__(self) -> str:
        return f"denied by {self.policy}" if self.policy else "no ALLOW policy matched"


def policy_rejection_logged(
    records: Sequence[AccessLogRecord],
    *,
    denied_by: str | None = None,
    none_allowed: bool = False,
    rejection: PolicyRejection | None = None,
    src_identity: str | None = None,
    src_ip: str | None = None,
    dst_workload: str | None = None,
) -> Verdict:
    """The destination ztunnel closed this client's connection to this server for this policy.

    Only the destination side knows (captures/ztunnel-1.27.9: the source side logs `http status: 401
    Unauthorized`, or 503 when nothing listens). Its record is an ERROR `connection complete`, direction
    inbound, whose `error` is exactly the rejection: `... explicitly denied by: <ns>/<policy>` for
    `denied_by` (or `rejection`), `... allow policies exist, but none allowed` for `none_allowed`. One
    of them is required: a deny by another policy, a refused port (`connection failed: Connection
    refused`) or an unnamed reason does not count. `src_identity` (mTLS clients) and `src_ip` (any
    client; plaintext records carry no identity) name the client, `dst_workload` the server pod.
    """
    wanted = _rejection(denied_by, none_allowed, rejection)
    expected = wanted.error
    rejections = [
        r
        for r in records
        if r.message == "connection complete"
        and r.direction == "inbound"
        and r.error is not None
        and POLICY_REJECTION in r.error
    ]
    for record in rejections:
        if record.error != expected:
            continue
        if src_identity is not None and record.src_identity != src_identity:
            continue
        if src_ip is not None and record.src_ip != src_ip:
            continue
        if dst_workload is not None and record.dst_workload != dst_workload:
            continue
        client = record.src_identity or f"plaintext from {record.src_ip}"
        return Verdict.passed(
            f"destination ztunnel logged {expected!r} for {client} -> {record.dst_workload} at {record.time}"
        )
    who = ", ".join(
        f"{k}={v}"
        for k, v in (("src.identity", src_identity), ("src ip", src_ip), ("dst.workload", dst_workload))
        if v
    )
    seen = sorted({f"{r.error} ({r.src_identity or r.src_ip} -> {r.dst_workload})" for r in rejections})
    return Verdict.failed(
        f"no inbound access record with error {expected!r}"
        + (f" for {who}" if who else "")
        + f"; policy rejections seen: {seen[:3] or 'none'}"
    )


def _rejection(
    denied_by: str | None, none_allowed: bool, rejection: PolicyRejection | None
) -> PolicyRejection:
    given = [x for x in (denied_by, none_allowed or None, rejection) if x is not None]
    if len(given) != 1:
        raise ValueError("name the rejection: exactly one of denied_by, none_allowed or rejection")
    if rejection is not None:
        return rejection
    if denied_by is not None:
        namespace, _, name = denied_by.partition("/")
        return PolicyRejection.denied_by(namespace, name)
    return PolicyRejection.no_allow_matched()


def ztunnel_routed_via_waypoint(
    records: Sequence[AccessLogRecord], src_identity: str, waypoint_identity: str
) -> Verdict:
    """The client's ztunnel sent the client's connection to the waypoint (its HBONE destination).

    For service traffic bound to a waypoint the source ztunnel connects to the waypoint workload, so its
    outbound record names the waypoint as `dst.workload`/`dst.identity` and keeps the Service as
    `dst.hbone_addr`/`dst.service` (ztunnel@1.27.9 src/proxy/outbound.rs: the request's
    `actual_destination_workload` is the waypoint; metrics.rs logs it as dst). Read on the client's node.
    """
    outbound = [r for r in records if r.message == "connection complete" and r.direction == "outbound"]
    for record in outbound:
        if record.src_identity == src_identity and record.dst_identity == waypoint_identity:
            return Verdict.passed(
                f"{src_identity} -> waypoint {record.dst_workload} ({waypoint_identity}) for "
                f"{record.dst_service or record.dst_hbone_addr} at {record.time}"
            )
    seen = sorted({str(r.dst_identity) for r in outbound if r.src_identity == src_identity})
    return Verdict.failed(
        f"no outbound record from {src_identity} to the waypoint {waypoint_identity}: the call did not go "
        f"through it (destinations seen from that client: {seen[:4] or 'none'})"
    )
