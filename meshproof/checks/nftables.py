"""Verdicts over a pod network namespace's nftables ruleset: is traffic captured by Istio's native nftables?

Istio 1.27's native-nftables capture (istio-facts §5; the rulesets it writes are
`tools/istio-nftables/pkg/capture/testdata/*.golden`) puts the sidecar's redirection into table
`inet istio-proxy-nat`: base chains `prerouting` and `output` (`type nat`), which jump through
`istio-inbound` / `istio-output` to `istio-in-redirect` (`redirect to :15006`) and `istio-redirect`
(`redirect to :15001`). A redirect rule that no hook reaches captures nothing, so the check follows the
rules the kernel would: from each nat base chain, rule by rule, into `jump`/`goto` targets, stopping at a
rule that ends the chain for every packet (an unconditional `return`, `accept`, `drop`, `goto`), and only
through rules that can match TCP.

Inbound is what the `prerouting` hook reaches (packets arriving at the pod), outbound what the `output`
hook reaches (packets the pod sends). Istio's output chain also sends some loopback traffic of the proxy to
15006; that does not count as inbound capture.

Pure functions; they never raise on bad input: whatever is wrong comes back as a failed Verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshproof.checks.verdict import Verdict
from meshproof.evidence.nftables import (
    TERMINAL_VERDICTS,
    Chain,
    Rule,
    Ruleset,
    Table,
    describe_statement,
)

ISTIO_NAT_TABLE = ("inet", "istio-proxy-nat")  # tools/istio-nftables/pkg/constants/constants.go
ISTIO_MANGLE_TABLE = ("inet", "istio-proxy-mangle")
ISTIO_IPTABLES_CHAIN_PREFIX = "ISTIO_"
# istiod's injection template (manifests/charts/istio-control/istio-discovery/files/injection-template.yaml)
ISTIO_INIT_CONTAINERS = ("istio-init", "istio-validation")
NATIVE_NFTABLES_ARG = "--native-nftables"  # iptables mode: ISTIO_INBOUND, ISTIO_OUTPUT, ISTIO_REDIRECT, ...
MAX_JUMP_DEPTH = 16  # nft itself refuses deeper jump stacks than 16 in some kernels; Istio uses 2

_L4_PROTOCOLS = ("tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "ipv6-icmp")


@dataclass(frozen=True)
class Redirect:
    """A `redirect to :port` rule reached from a hook: through which chains, under which conditions."""

    port: object
    chains: tuple[str, ...]
    conditions: tuple[str, ...]  # what a packet must match on the way
    # The matches of earlier rules that take packets out (return, accept, goto ...) before the redirect.
    exceptions: tuple[tuple[str, ...], ...] = ()

    @property
    def shadowed_by(self) -> tuple[str, ...] | None:
        """An earlier exit that every packet meeting the redirect's conditions also meets, if any: then the
        redirect never fires (Istio writes `ip6 daddr 2001:db8::/32 return` before a jump for the same
        range when a range is both excluded and included)."""
        wanted = set(self.conditions)
        return next((e for e in self.exceptions if set(e) <= wanted), None)

    @property
    def owner_specific(self) -> bool:
        """Only for sockets of one owner (`meta skuid 1337`): Istio's loop-back path for the proxy's own
        traffic, not a capture of the application's connections."""
        return any(c.startswith(("meta skuid ", "meta skgid ")) and " != " not in c for c in self.conditions)

    def describe(self) -> str:
        route = " -> ".join(self.chains)
        details = [", ".join(self.conditions)] if self.conditions else []
        if self.exceptions:
            details.append("unless " + " | ".join(" ".join(e) for e in self.exceptions))
        return f"{route} [{'; '.join(details)}]" if details else route


@dataclass(frozen=True)
class _Direction:
    name: str
    hook: str
    port: int


def native_istio_redirect(
    ruleset: Ruleset, *, outbound_port: int = 15001, inbound_port: int = 15006
) -> Verdict:
    """Pass only when `inet istio-proxy-nat` redirects outbound TCP to `outbound_port` (from the output hook)
    and inbound TCP to `inbound_port` (from the prerouting hook); otherwise say what is missing."""
    bad = _bad_input(ruleset, outbound_port=outbound_port, inbound_port=inbound_port)
    if bad is not None:
        return bad
    table = ruleset.table(*ISTIO_NAT_TABLE)
    if table is None:
        return Verdict.failed(
            f"no table {' '.join(ISTIO_NAT_TABLE)} in the ruleset (tables: "
            f"{', '.join(ruleset.table_names) or 'none'}): "
            "the pod's traffic is not captured by native nftables"
        )
    directions = (
        _Direction("outbound", "output", outbound_port),
        _Direction("inbound", "prerouting", inbound_port),
    )
    found: list[str] = []
    problems: list[str] = []
    for direction in directions:
        redirect, problem = _capture(table, direction)
        if redirect is not None:
            found.append(f"{direction.name} TCP to :{direction.port} via {redirect.describe()}")
        else:
            problems.append(problem)
    if problems:
        note = _tproxy_note(ruleset, inbound_port) if any("inbound" in p for p in problems) else ""
        return Verdict.failed("; ".join(problems) + note)
    return Verdict.passed(f"{' '.join(ISTIO_NAT_TABLE)} redirects " + " and ".join(found))


def _bad_input(ruleset: object, **ports: object) -> Verdict | None:
    """A failed verdict naming the first bad argument (the checks never raise on bad input), or None."""
    if not isinstance(ruleset, Ruleset):
        return Verdict.failed(f"expected a parsed nftables Ruleset, got {type(ruleset).__name__}")
    for label, value in ports.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            return Verdict.failed(f"{label} must be a TCP port number, got {value!r}")
    return None


def _capture(table: Table, direction: _Direction) -> tuple[Redirect | None, str]:
    """The first redirect to the direction's port reachable from its nat hook, or why there is none."""
    bases = table.base_chains(hook=direction.hook, chain_type="nat")
    where = f"{table.key}"
    if not bases:
        return None, (
            f"{direction.name} TCP is not captured: "
            f"{where} has no nat base chain on the {direction.hook} hook"
        )
    reached = [r for base in bases for r in reachable_redirects(table, base)]
    live = [r for r in reached if r.shadowed_by is None and not r.owner_specific]
    hits = [r for r in live if r.port == direction.port]
    if hits:
        return min(hits, key=lambda r: len(r.conditions)), ""
    reached_chains = {r.chains[-1] for r in reached}
    unreached = [c for c in _redirect_chains(table, direction.port) if c not in reached_chains]
    message = f"{direction.name} TCP is not redirected to :{direction.port}: "
    shadowed = [r for r in reached if r.shadowed_by is not None and r.port == direction.port]
    if shadowed:
        dead = shadowed[0]
        message += (
            f"the redirect via {' -> '.join(dead.chains)} for [{', '.join(dead.conditions)}] never fires: "
            f"an earlier rule `{' '.join(dead.shadowed_by or ())}` takes every such packet out first"
        )
        return None, message
    if reached:
        others = "; ".join(
            f":{r.port} via {r.describe()}" + (" (one socket owner only)" if r.owner_specific else "")
            for r in reached
            if r.shadowed_by is None
        )
        message += f"the {direction.hook} hook of {where} reaches only redirects to {others}"
    else:
        message += f"no redirect rule is reached from the {direction.hook} hook of {where}"
    if unreached:
        message += (
            f" (chain {', '.join(unreached)} redirects to :{direction.port} but no rule reached from the "
            f"{direction.hook} hook jumps there)"
        )
    return None, message


def reachable_redirects(
    table: Table, base: Chain, *, dport: int | None = None, stops: list[str] | None = None
) -> list[Redirect]:
    """Every TCP `redirect` rule evaluation can reach from `base`, in evaluation order.

    With `dport`, the walk follows one TCP destination port: rules whose `tcp dport` match rejects it are
    skipped, and an exit (`return`, ...) whose every match accepts it ends the chain for that packet; those
    exits are appended to `stops` (for the verdict's reason).
    """
    found: list[Redirect] = []
    _walk(table, base, _Route((), (), ()), found, dport, stops if stops is not None else [])
    return found


@dataclass(frozen=True)
class _Route:
    chains: tuple[str, ...]
    conditions: tuple[str, ...]
    exceptions: tuple[tuple[str, ...], ...]


def _walk(
    table: Table, chain: Chain, route: _Route, found: list[Redirect], dport: int | None, stops: list[str]
) -> None:
    chains = (*route.chains, chain.name)
    if len(chains) > MAX_JUMP_DEPTH:
        return
    exceptions = route.exceptions
    for rule in chain.rules:
        matches = [item for item in rule.expr if isinstance(item, Mapping) and "match" in item]
        terminal = any(rule.has(kind) for kind in TERMINAL_VERDICTS)
        port_verdict = _dport_verdict(matches, dport)
        if port_verdict is False or not _can_match_tcp(rule):
            continue  # this packet (or no TCP packet) matches the rule
        here = (*route.conditions, *(describe_statement(m) for m in matches if not _is_tcp_selector(m)))
        for body in rule.statements("redirect"):
            port = body.get("port") if isinstance(body, Mapping) else None
            found.append(Redirect(port, chains, here, exceptions))
        target = rule.jump_target
        if target is not None and target in table.chains and target not in chains:
            _walk(table, table.chains[target], _Route(chains, here, exceptions), found, dport, stops)
        if terminal and port_verdict is True and all(_is_port_or_tcp(m) for m in matches):
            stops.append(f"`{rule.text}` in {chain.name}")
            return  # this packet leaves the chain here
        if terminal and matches:
            exceptions = (
                *exceptions,
                tuple(describe_statement(m) for m in matches if not _is_tcp_selector(m)),
            )
        if terminal and not matches:
            return  # every packet leaves the chain here: later rules are never evaluated


def _dport_verdict(matches: list[Mapping[str, Any]], dport: int | None) -> bool | None:
    """Whether the rule's `tcp dport` matches accept `dport`: None when undecidable or there are none."""
    if dport is None:
        return None
    verdict: bool | None = None
    for item in matches:
        body = item.get("match")
        if not isinstance(body, Mapping) or not _is_tcp_dport(body.get("left")):
            continue
        accepted = _port_in(dport, body.get("right"))
        if accepted is None:
            return None
        if body.get("op", "==") == "!=":
            accepted = not accepted
        elif body.get("op", "==") not in ("==", "in"):
            return None
        if not accepted:
            return False
        verdict = True
    return verdict


def _is_tcp_dport(left: Any) -> bool:
    payload = left.get("payload") if isinstance(left, Mapping) else None
    return (
        isinstance(payload, Mapping) and payload.get("protocol") == "tcp" and payload.get("field") == "dport"
    )


def _port_in(port: int, right: Any) -> bool | None:
    if isinstance(right, int) and not isinstance(right, bool):
        return port == right
    if isinstance(right, Mapping) and isinstance(right.get("set"), list):
        results = [_port_in(port, value) for value in right["set"]]
        return None if None in results else any(results)
    if isinstance(right, Mapping) and isinstance(right.get("range"), list) and len(right["range"]) == 2:
        low, high = right["range"]
        return low <= port <= high if isinstance(low, int) and isinstance(high, int) else None
    return None


def _is_port_or_tcp(item: Mapping[str, Any]) -> bool:
    body = item.get("match")
    return _is_tcp_selector(item) or (isinstance(body, Mapping) and _is_tcp_dport(body.get("left")))


def _can_match_tcp(rule: Rule) -> bool:
    """False when the rule's matches restrict it to another layer-4 protocol (e.g. `udp dport 53`)."""
    for body in rule.statements("match"):
        if not isinstance(body, Mapping):
            continue
        protocols = _protocols_named(body)
        if protocols is None:
            continue
        if body.get("op", "==") == "!=" and _is_l4proto(body.get("left")):
            if "tcp" in protocols:
                return False
        elif "tcp" not in protocols:
            return False
    return True


def _protocols_named(match: Mapping[str, Any]) -> set[str] | None:
    """The L4 protocols a match tests: `meta l4proto tcp`, `tcp dport ...`; None for other matches."""
    left = match.get("left")
    if _is_l4proto(left):
        right = match.get("right")
        values = right.get("set") if isinstance(right, Mapping) else [right]
        return {str(v) for v in values} if isinstance(values, list) else None
    if isinstance(left, Mapping) and isinstance(left.get("payload"), Mapping):
        protocol = left["payload"].get("protocol")
        if protocol in _L4_PROTOCOLS:
            return {str(protocol)}  # `tcp dport != 53` still only matches TCP packets
    return None


def _is_l4proto(left: Any) -> bool:
    return (
        isinstance(left, Mapping)
        and isinstance(left.get("meta"), Mapping)
        and left["meta"].get("key") == "l4proto"
    )


def _is_tcp_selector(item: Mapping[str, Any]) -> bool:
    body = item.get("match")
    return isinstance(body, Mapping) and _is_l4proto(body.get("left")) and body.get("right") == "tcp"


def _redirect_chains(table: Table, port: int) -> list[str]:
    return [
        chain.name
        for chain in table.chains.values()
        if any(
            isinstance(b, Mapping) and b.get("port") == port
            for r in chain.rules
            for b in r.statements("redirect")
        )
    ]


def _tproxy_note(ruleset: Ruleset, inbound_port: int) -> str:
    mangle = ruleset.table(*ISTIO_MANGLE_TABLE)
    if mangle is None:
        return ""
    tproxied = any(
        isinstance(b, Mapping) and b.get("port") == inbound_port
        for chain in mangle.chains.values()
        for rule in chain.rules
        for b in rule.statements("tproxy")
    )
    if not tproxied:
        return ""
    return (
        f" (inbound is intercepted by TPROXY to :{inbound_port} in {' '.join(ISTIO_MANGLE_TABLE)}: "
        "interception mode TPROXY, not the REDIRECT capture this check verifies)"
    )


def no_istio_iptables_chains(
    ruleset: Ruleset,
    iptables_chains: Iterable[str] = (),
    *,
    iptables_read: bool,
    iptables_status: str = "",
) -> Verdict:
    """Pass when neither the nftables view nor `iptables-save` shows Istio's iptables chains (ISTIO_*).

    iptables-nft writes iptables rules as nftables tables (`ip nat`, `ip6 nat`), so they show in the nft
    ruleset; iptables-legacy rules do not, hence `iptables_chains` (meshproof.evidence.iptables). When the
    legacy side was not read (`iptables_read` False: a tool missing or failing, said in `iptables_status`;
    meshproof.evidence.pod_netns.PodNetnsRules carries both), no chains there proves nothing: the check fails.
    """
    if not isinstance(ruleset, Ruleset):
        return Verdict.failed(f"expected a parsed nftables Ruleset, got {type(ruleset).__name__}")
    try:
        legacy = [str(c) for c in iptables_chains]
    except TypeError:
        return Verdict.failed(
            f"iptables_chains must be a list of chain names, got {type(iptables_chains).__name__}"
        )
    in_nft = [
        name for name in ruleset.chain_names() if name.split(" ")[-1].startswith(ISTIO_IPTABLES_CHAIN_PREFIX)
    ]
    in_iptables = [c for c in legacy if c.split(" ")[-1].startswith(ISTIO_IPTABLES_CHAIN_PREFIX)]
    if in_nft or in_iptables:
        return Verdict.failed(
            "iptables capture is present: " + ", ".join(in_nft + [f"iptables {c}" for c in in_iptables])
        )
    if not iptables_read:
        status = f" ({iptables_status})" if iptables_status else ""
        return Verdict.failed(
            f"iptables-legacy rules were not read{status}: no {ISTIO_IPTABLES_CHAIN_PREFIX}* chain in "
            f"nftables ({len(ruleset.tables)} table(s)), but legacy iptables chains would not show there"
        )
    status = f"; {iptables_status}" if iptables_status else ""
    return Verdict.passed(
        f"no {ISTIO_IPTABLES_CHAIN_PREFIX}* chain in nftables ({len(ruleset.tables)} table(s)) "
        f"or iptables ({len(legacy)} chain(s){status})"
    )


def inbound_port_captured(ruleset: Ruleset, port: int, *, inbound_port: int = 15006) -> Verdict:
    """Pass when a TCP connection arriving for `port` is redirected to `inbound_port` by Istio's nat table.

    The per-port view of the inbound capture: a pod excluded from capture on `port`
    (`traffic.sidecar.istio.io/excludeInboundPorts`) has `tcp dport <port> return` before the redirect, and
    fails here while the rest of its capture still passes `native_istio_redirect`.
    """
    bad = _bad_input(ruleset, port=port, inbound_port=inbound_port)
    if bad is not None:
        return bad
    table = ruleset.table(*ISTIO_NAT_TABLE)
    if table is None:
        return Verdict.failed(f"no table {' '.join(ISTIO_NAT_TABLE)}: inbound TCP to {port} is not captured")
    stops: list[str] = []
    reached = [
        r
        for base in table.base_chains(hook="prerouting", chain_type="nat")
        for r in reachable_redirects(table, base, dport=port, stops=stops)
    ]
    hits = [r for r in reached if r.port == inbound_port and r.shadowed_by is None and not r.owner_specific]
    if hits:
        return Verdict.passed(
            f"inbound TCP to {port} is redirected to :{inbound_port} via {hits[0].describe()}"
        )
    why = (
        f"it leaves at {'; '.join(stops)}"
        if stops
        else "no redirect to it is reached from the prerouting hook"
    )
    return Verdict.failed(f"inbound TCP to {port} is not redirected to :{inbound_port}: {why}")


def init_container_requests_native_nftables(pod: Mapping[str, Any]) -> Verdict:
    """Pass when the injected init container (`istio-init`, or `istio-validation` with istio-cni) carries
    `--native-nftables` (istiod's injection template adds it when `global.nativeNftables` is true)."""
    if not isinstance(pod, Mapping):
        return Verdict.failed(f"expected a pod object, got {type(pod).__name__}")
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    name = (pod.get("metadata") or {}).get("name", "?") if isinstance(pod.get("metadata"), Mapping) else "?"
    inits = [c for c in (spec or {}).get("initContainers") or [] if isinstance(c, Mapping)]
    istio = [c for c in inits if c.get("name") in ISTIO_INIT_CONTAINERS]
    if not istio:
        names = ", ".join(str(c.get("name")) for c in inits) or "none"
        return Verdict.failed(f"pod {name} has no istio-init/istio-validation init container (init: {names})")
    for container in istio:
        args = [str(a) for a in (container.get("args") or [])]
        if NATIVE_NFTABLES_ARG in args:
            return Verdict.passed(f"pod {name}: {container.get('name')} runs with {NATIVE_NFTABLES_ARG}")
    return Verdict.failed(
        f"pod {name}: {', '.join(str(c.get('name')) for c in istio)} lacks {NATIVE_NFTABLES_ARG} "
        "(the capture is iptables)"
    )
