"""The native-nftables check on rulesets the real `nft` loaded into network namespaces, and real TCP.

Rulesets are Istio 1.27.9's own (`tools/istio-nftables/pkg/capture/testdata/*.golden`, the `nft -f` input its
capture code writes for each test configuration, from ../shared/upstream). Each is applied with `nft -f`
inside a namespace the test creates, read back with `nft -j list ruleset`, parsed and judged.

No golden is the default sidecar configuration (inbound ports `*`, outbound ranges `*`):
`inbound-ports-wildcard` sets inbound `*` only, `kube-virt-interfaces` sets outbound `*` (plus virtual
interfaces). The default is the first plus the one rule outbound `*` adds,
`add rule inet istio-proxy-nat istio-output jump istio-redirect`, appended after the loopback return exactly
as in `kube-virt-interfaces.golden` (configs: run_test.go, istio/istio@1.27.9). That composed ruleset is the
positive case; the mutations of it are the negative ones.

The traffic tests join a `pod` and a `peer` namespace with a veth pair, run listeners on 15001 and 15006
(and an app port) in the pod and a service in the peer, and see which listener answers: what the check
accepts really redirects, and where it rejects, the connection really goes elsewhere.

What this cannot prove: that a cluster's pods carry these rules (the nftables conformance suite reads them
from the pod's netns), or Envoy's behaviour behind 15001/15006.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_data.netns import NetNs, container_process, link, netns, require_netns
from fixtures_data.shared_data import upstream

from meshproof.checks.nftables import inbound_port_captured, native_istio_redirect, no_istio_iptables_chains
from meshproof.checks.verdict import Verdict
from meshproof.evidence import pod_netns
from meshproof.evidence.nftables import Ruleset, parse_ruleset

pytestmark = pytest.mark.local_real

GOLDENS = ("istio-1.27.9", "tools", "istio-nftables", "pkg", "capture", "testdata")
OUTBOUND_WILDCARD_RULE = "add rule inet istio-proxy-nat istio-output jump istio-redirect"
APP_PORT = 8080  # a server port of the pod's app (inbound `*` captures it)
PEER_PORT = 9090  # a service outside the pod (outbound `*` captures calls to it)

# What the check says about every golden nft can load here. Only the default composition captures both ways;
# each golden sets one capture option, so it misses one direction (or, for ipv6-ipnets and ipv6-uid-gid, its
# outbound include is shadowed by the same range excluded first, a dead rule a naive check would accept).
INBOUND_MISSING = {
    "ip-range",
    "ipnets",
    "ipnets-with-kube-virt-interfaces",
    "ipv6-outbound-ports",
    "kube-virt-interfaces",
    "loopback-outbound-iprange",
    "outbound-ports-include",
    "tproxy",
}
OUTBOUND_MISSING = {
    "basic-exclude-nic",
    "dns-uid-gid",
    "drop-invalid",
    "empty",
    "host-ipv4-loopback-cidr",
    "inbound-ports-empty-tproxy",
    "inbound-ports-include",
    "inbound-ports-tproxy",
    "inbound-ports-wildcard",
    "inbound-ports-wildcard-tproxy",
    "ipv6-dns-uid-gid",
    "ipv6-empty-inbound-ports",
    "ipv6-inbound-ports",
    "ipv6-ipnets",
    "ipv6-uid-gid",
    "ipv6-virt-interfaces",
}
# These name Linux groups (`skgid != java`, `skgid ftp`) that nft resolves on the machine loading them; a
# machine without those groups cannot load them, so they are not applied here.
NAMED_GROUP_GOLDENS = {
    "outbound-owner-groups",
    "outbound-owner-groups-exclude",
    "ipv6-dns-outbound-owner-groups",
    "ipv6-dns-outbound-owner-groups-exclude",
}


def golden(name: str) -> str:
    return upstream(*GOLDENS, f"{name}.golden").read_text()


def default_sidecar_ruleset() -> str:
    """inbound `*` (inbound-ports-wildcard.golden) plus outbound `*`'s rule: the default injected config."""
    text = golden("inbound-ports-wildcard")
    assert OUTBOUND_WILDCARD_RULE in golden("kube-virt-interfaces")  # the line is Istio's, not ours
    return text.rstrip("\n") + "\n" + OUTBOUND_WILDCARD_RULE + "\n"


def mutate(text: str, *, drop: str | None = None, replace: tuple[str, str] | None = None) -> str:
    lines = text.splitlines()
    if drop is not None:
        assert drop in lines, f"mutation target not in the ruleset: {drop}"
        lines.remove(drop)
    if replace is not None:
        assert any(replace[0] in line for line in lines), f"mutation target not in the ruleset: {replace[0]}"
        lines = [line.replace(*replace) for line in lines]
    return "\n".join(lines) + "\n"


MUTATIONS = {
    "wrong outbound port": (
        dict(replace=("redirect to :15001", "redirect to :15002")),
        ":15002 via output -> istio-output -> istio-redirect",
    ),
    "missing inbound redirect": (
        dict(drop="add rule inet istio-proxy-nat istio-in-redirect meta l4proto tcp redirect to :15006"),
        "inbound TCP is not redirected to :15006",
    ),
    "redirect chain not reachable from a hook": (
        dict(drop="add rule inet istio-proxy-nat prerouting meta l4proto tcp jump istio-inbound"),
        "chain istio-in-redirect redirects to :15006 but no rule reached from the prerouting hook jumps",
    ),
    "unconditional return before the outbound jump": (
        dict(
            replace=(
                "add rule inet istio-proxy-nat output jump istio-output",
                "add rule inet istio-proxy-nat output return\n"
                "add rule inet istio-proxy-nat output jump istio-output",
            )
        ),
        "outbound TCP is not redirected to :15001: no redirect rule is reached from the output hook",
    ),
}


def swapped_ports(text: str) -> str:
    return (
        text.replace("redirect to :15001", "redirect to :PORT_A")
        .replace("redirect to :15006", "redirect to :15001")
        .replace("redirect to :PORT_A", "redirect to :15006")
    )


@pytest.fixture
def pod() -> Iterator[NetNs]:
    require_netns()
    with netns("pod") as namespace:
        yield namespace


def loaded(namespace: NetNs, ruleset_text: str) -> Ruleset:
    """Apply with the real nft, read back as JSON, parse: what the suite does with a pod's netns."""
    result = namespace.nft_apply(ruleset_text)
    assert result.returncode == 0, f"nft -f refused the ruleset: {result.stderr.strip()}"
    return parse_ruleset(namespace.nft_json())


def test_the_default_sidecar_ruleset_redirects_both_ways(pod: NetNs) -> None:
    verdict = native_istio_redirect(loaded(pod, default_sidecar_ruleset()))
    assert verdict.ok, verdict.reason
    assert "outbound TCP to :15001 via output -> istio-output -> istio-redirect" in verdict.reason
    assert "inbound TCP to :15006 via prerouting -> istio-inbound -> istio-in-redirect" in verdict.reason
    # The same namespace judged for other ports: the check reads the ports, it does not assume them.
    assert not native_istio_redirect(loaded(pod, default_sidecar_ruleset()), outbound_port=15002)


def test_an_empty_namespace_has_no_istio_capture(pod: NetNs) -> None:
    ruleset = parse_ruleset(pod.nft_json())
    verdict = native_istio_redirect(ruleset)
    assert not verdict.ok
    assert "no table inet istio-proxy-nat in the ruleset (tables: none)" in verdict.reason


APPLICABLE = sorted(INBOUND_MISSING | OUTBOUND_MISSING)


@pytest.mark.parametrize("name", APPLICABLE)
def test_each_istio_golden_loads_and_is_judged_for_what_it_captures(pod: NetNs, name: str) -> None:
    text = golden(name)
    ruleset = loaded(pod, text)
    # The parser kept every chain and rule nft loaded from Istio's file.
    chains = sum(1 for line in text.splitlines() if line.startswith("add chain "))
    rules = sum(1 for line in text.splitlines() if line.startswith(("add rule ", "insert rule ")))
    assert sum(len(t.chains) for t in ruleset.tables) == chains
    assert sum(len(c.rules) for t in ruleset.tables for c in t.chains.values()) == rules

    verdict = native_istio_redirect(ruleset)
    assert not verdict.ok, f"{name} captures only one direction, yet the check passed: {verdict.reason}"
    if name in INBOUND_MISSING:
        assert "inbound TCP is not" in verdict.reason, verdict.reason
    if name in OUTBOUND_MISSING:
        assert "outbound TCP is not" in verdict.reason, verdict.reason


def test_every_golden_is_judged_or_named_as_not_loadable_here() -> None:
    directory = upstream(*GOLDENS)
    names = {path.stem for path in directory.glob("*.golden")}
    assert names == set(APPLICABLE) | NAMED_GROUP_GOLDENS
    for name in NAMED_GROUP_GOLDENS:
        assert "skgid != java" in golden(name) or "skgid ftp" in golden(name), name


def test_shadowed_outbound_include_is_rejected_with_the_rule_that_shadows_it(pod: NetNs) -> None:
    verdict = native_istio_redirect(loaded(pod, golden("ipv6-uid-gid")))
    assert not verdict.ok
    assert (
        "never fires: an earlier rule `ip6 daddr 2001:db8::/32` takes every such packet out" in verdict.reason
    )


def test_tproxy_interception_is_named_not_accepted(pod: NetNs) -> None:
    verdict = native_istio_redirect(loaded(pod, golden("tproxy")))
    assert not verdict.ok
    assert "intercepted by TPROXY to :15006 in inet istio-proxy-mangle" in verdict.reason


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutated_default_ruleset_fails_with_what_is_missing(pod: NetNs, mutation: str) -> None:
    change, expected = MUTATIONS[mutation]
    verdict = native_istio_redirect(loaded(pod, mutate(default_sidecar_ruleset(), **change)))  # type: ignore[arg-type]
    assert not verdict.ok, f"{mutation}: the check passed: {verdict.reason}"
    assert expected in verdict.reason, verdict.reason


def test_swapped_ports_fail_both_directions(pod: NetNs) -> None:
    verdict = native_istio_redirect(loaded(pod, swapped_ports(default_sidecar_ruleset())))
    assert not verdict.ok
    assert "outbound TCP is not redirected to :15001" in verdict.reason
    assert "(one socket owner only)" in verdict.reason  # the proxy's own loop-back path is not a capture
    assert "inbound TCP is not redirected to :15006" in verdict.reason
    assert "chain istio-in-redirect redirects to :15001 but no rule" not in verdict.reason


def test_istio_nftables_capture_has_no_iptables_chains_but_iptables_nft_chains_are_seen(pod: NetNs) -> None:
    verdict = no_istio_iptables_chains(loaded(pod, default_sidecar_ruleset()), iptables_read=True)
    assert verdict.ok, verdict.reason
    # iptables-nft stores iptables chains as nftables chains of `ip nat`: an iptables capture shows there.
    legacy_style = "add table ip nat\nadd chain ip nat ISTIO_OUTPUT\nadd chain ip nat ISTIO_REDIRECT\n"
    verdict = no_istio_iptables_chains(loaded(pod, legacy_style), iptables_read=True)
    assert not verdict.ok and "ip nat ISTIO_OUTPUT" in verdict.reason


# --- real TCP through the rules -------------------------------------------------------------------------


@pytest.fixture
def pod_and_peer(pod: NetNs) -> Iterator[tuple[NetNs, NetNs, str, str]]:
    with netns("peer") as peer:
        addresses = link(pod, peer)
        yield pod, peer, addresses.pod_v4, addresses.peer_v4


def where_traffic_goes(pod: NetNs, peer: NetNs, pod_ip: str, peer_ip: str) -> tuple[str, str]:
    """(who answered a call into the pod's app port, who answered the pod's call to the peer service)."""
    with pod.listeners([15001, 15006, APP_PORT]), peer.listeners([PEER_PORT]):
        inbound = peer.connect(pod_ip, APP_PORT)
        outbound = pod.connect(peer_ip, PEER_PORT)
    return inbound, outbound


def test_without_rules_calls_reach_the_app_and_the_peer(pod_and_peer: tuple[NetNs, NetNs, str, str]) -> None:
    """The control for the listeners themselves: with no capture each call reaches its real destination."""
    pod, peer, pod_ip, peer_ip = pod_and_peer
    assert where_traffic_goes(pod, peer, pod_ip, peer_ip) == (str(APP_PORT), str(PEER_PORT))


def test_what_the_check_accepts_really_redirects_both_ways(
    pod_and_peer: tuple[NetNs, NetNs, str, str],
) -> None:
    pod, peer, pod_ip, peer_ip = pod_and_peer
    verdict: Verdict = native_istio_redirect(loaded(pod, default_sidecar_ruleset()))
    assert verdict.ok, verdict.reason
    inbound, outbound = where_traffic_goes(pod, peer, pod_ip, peer_ip)
    assert inbound == "15006", f"a call into the pod reached {inbound}, not the inbound capture port"
    assert outbound == "15001", f"the pod's outbound call reached {outbound}, not the outbound capture port"


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(
            "wrong outbound port", ("15006", "error: ConnectionRefusedError"), id="wrong-outbound-port"
        ),
        pytest.param(
            "redirect chain not reachable from a hook", (str(APP_PORT), "15001"), id="unreachable-inbound"
        ),
        pytest.param("missing inbound redirect", (str(APP_PORT), "15001"), id="missing-inbound-redirect"),
    ],
)
def test_what_the_check_rejects_really_does_not_redirect(
    pod_and_peer: tuple[NetNs, NetNs, str, str], mutation: str, expected: tuple[str, str]
) -> None:
    pod, peer, pod_ip, peer_ip = pod_and_peer
    change, _ = MUTATIONS[mutation]
    verdict = native_istio_redirect(loaded(pod, mutate(default_sidecar_ruleset(), **change)))  # type: ignore[arg-type]
    assert not verdict.ok, verdict.reason
    inbound, outbound = where_traffic_goes(pod, peer, pod_ip, peer_ip)
    assert (inbound, outbound[: len(expected[1])]) == expected


def test_shadowed_include_really_does_not_redirect(pod_and_peer: tuple[NetNs, NetNs, str, str]) -> None:
    """ipv6-uid-gid includes and excludes 2001:db8::/32; the check says the include never fires. Traffic
    agrees: a call from the pod to the peer's 2001:db8: address reaches the peer, not 15001."""
    pod, peer, _, _ = pod_and_peer
    assert not native_istio_redirect(loaded(pod, golden("ipv6-uid-gid")))
    with pod.listeners([15001, 15006]), peer.listeners([PEER_PORT]):
        answered = pod.connect("2001:db8:7::1", PEER_PORT)
    assert answered == str(PEER_PORT)


# --- the node-side reader the conformance suite runs (meshproof.evidence.pod_netns) ---------------------


def run_reader(container: str, *, path: str | None = None) -> str:
    """Run the reader script; `path` replaces PATH (to run it without, or with a failing, legacy tool)."""
    script = pod_netns.DUMP_FUNCTION + pod_netns.READER_SCRIPT
    env = None if path is None else {**os.environ, "PATH": path}
    result = subprocess.run(
        ["/bin/sh", "-c", script, "reader", container], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def legacy_tools_installed() -> bool:
    return all(shutil.which(tool) for tool in pod_netns.LEGACY_TOOLS)


def judged(seen: pod_netns.PodNetnsRules) -> Verdict:
    """The suite's call: the legacy side counts only if the reader read it."""
    return no_istio_iptables_chains(
        seen.ruleset,
        seen.iptables_chains,
        iptables_read=seen.iptables_read,
        iptables_status=seen.iptables_status,
    )


def bin_dir(tmp_path: Path, *tools: str) -> Path:
    """A PATH folder holding only `tools` (links to this host's), for running the reader without the rest."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (folder / tool).symlink_to(found)
    return folder


def test_node_reader_finds_the_container_by_cgroup_and_reads_its_netns(pod: NetNs) -> None:
    """The reader script, run on this host as it runs on a node: it finds the process whose cgroup names the
    container id and dumps that process's netns. The control: a second namespace without Istio rules, read
    through its own container id, gives the other verdict: the reader read the namespace it was pointed at."""
    loaded(pod, default_sidecar_ruleset())
    target, other = secrets.token_hex(32), secrets.token_hex(32)
    with netns("bare") as bare, container_process(pod, target), container_process(bare, other):
        seen = pod_netns.parse_reader_output(run_reader(target), pod="server", node="node-1")
        bare_seen = pod_netns.parse_reader_output(run_reader(other), pod="bare", node="node-1")
    assert native_istio_redirect(seen.ruleset).ok
    verdict = judged(seen)
    if legacy_tools_installed():
        assert seen.iptables_read, seen.iptables_status
        assert verdict.ok, verdict.reason
        assert "iptables-legacy-save exit 0, ip6tables-legacy-save exit 0" in verdict.reason
    else:  # the reader says the tools are missing, and the check does not pass on what it did not read
        assert not seen.iptables_read and not verdict.ok and "missing" in verdict.reason
    assert not native_istio_redirect(bare_seen.ruleset).ok


def test_node_reader_sees_legacy_iptables_chains(pod: NetNs) -> None:
    if shutil.which("iptables-legacy") is None or not legacy_tools_installed():
        pytest.skip("iptables-legacy is not installed (the reader then reports the tools missing)")
    pod.exec("iptables-legacy", "-t", "nat", "-N", "ISTIO_OUTPUT")
    container = secrets.token_hex(32)
    with container_process(pod, container):
        seen = pod_netns.parse_reader_output(run_reader(container), pod="server", node="node-1")
    assert seen.iptables_read, seen.iptables_status
    assert "nat ISTIO_OUTPUT" in seen.iptables_chains
    assert not no_istio_iptables_chains(seen.ruleset, seen.iptables_chains, iptables_read=True).ok
    verdict = judged(seen)
    assert not verdict.ok and "iptables nat ISTIO_OUTPUT" in verdict.reason


def test_node_reader_without_legacy_tools_is_not_a_clean_netns(pod: NetNs, tmp_path: Path) -> None:
    """A reader image without iptables-legacy-save reads nothing of the legacy side: the reader says so,
    and the absence check fails naming it, though the nftables side is clean."""
    loaded(pod, default_sidecar_ruleset())
    container = secrets.token_hex(32)
    path = bin_dir(tmp_path, "grep", "nsenter", "nft")
    with container_process(pod, container):
        seen = pod_netns.parse_reader_output(run_reader(container, path=str(path)), pod="p", node="n")
    assert native_istio_redirect(seen.ruleset).ok  # the nft side was read
    assert not seen.iptables_read and seen.iptables_chains == ()
    assert seen.iptables_status == "iptables-legacy-save missing, ip6tables-legacy-save missing"
    verdict = judged(seen)
    assert not verdict.ok
    assert "iptables-legacy rules were not read (iptables-legacy-save missing" in verdict.reason


def test_node_reader_reports_a_failing_legacy_tool(pod: NetNs, tmp_path: Path) -> None:
    """A legacy tool that runs but fails (here the real iptables-legacy-save, asked for a table that does not
    exist: `Cannot initialize: Table does not exist`, exit 1) is not a clean netns either."""
    if not legacy_tools_installed():
        pytest.skip("iptables-legacy is not installed")
    loaded(pod, default_sidecar_ruleset())
    folder = bin_dir(tmp_path, "grep", "nsenter", "nft", "ip6tables-legacy-save")
    real = shutil.which("iptables-legacy-save")
    failing = folder / "iptables-legacy-save"
    failing.write_text(f'#!/bin/sh\nexec {real} -t meshproof-no-such-table "$@"\n')
    failing.chmod(0o755)
    container = secrets.token_hex(32)
    with container_process(pod, container):
        seen = pod_netns.parse_reader_output(run_reader(container, path=str(folder)), pod="p", node="n")
    assert not seen.iptables_read
    assert seen.iptables_status == "iptables-legacy-save exit 1, ip6tables-legacy-save exit 0"
    verdict = judged(seen)
    assert not verdict.ok and "not read (iptables-legacy-save exit 1" in verdict.reason


def test_node_reader_names_a_container_it_cannot_find() -> None:
    require_netns()
    result = subprocess.run(
        ["/bin/sh", "-c", pod_netns.DUMP_FUNCTION + pod_netns.READER_SCRIPT, "reader", secrets.token_hex(32)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3 and "no process of container" in result.stderr


def test_per_port_inbound_capture_follows_istio_exclusions(
    pod_and_peer: tuple[NetNs, NetNs, str, str],
) -> None:
    """Istio itself excludes its HBONE port 15008 (`tcp dport 15008 return`): the per-port check says so, and
    a real call to 15008 reaches the listener there, while a call to the app port lands on 15006."""
    pod, peer, pod_ip, _ = pod_and_peer
    ruleset = loaded(pod, default_sidecar_ruleset())
    assert inbound_port_captured(ruleset, APP_PORT).ok
    excluded = inbound_port_captured(ruleset, 15008)
    assert not excluded.ok
    assert "leaves at `tcp dport 15008 return` in istio-inbound" in excluded.reason
    with pod.listeners([15006, 15008, APP_PORT]):
        assert peer.connect(pod_ip, APP_PORT) == "15006"
        assert peer.connect(pod_ip, 15008) == "15008"


def test_per_port_check_on_an_include_list(pod: NetNs) -> None:
    ruleset = loaded(pod, golden("inbound-ports-include"))  # InboundPortsInclude = 32000,31000
    assert inbound_port_captured(ruleset, 32000).ok
    verdict = inbound_port_captured(ruleset, APP_PORT)
    assert not verdict.ok and "no redirect to it is reached" in verdict.reason
