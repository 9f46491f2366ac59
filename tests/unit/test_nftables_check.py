"""The nftables ruleset parser and the native-nftables checks, on real `nft -j` output (fixtures_data/nft).

The local-real tier loads every Istio 1.27.9 golden and the mutations into namespaces; here the same
verdicts run without root, on saved output, plus the malformed inputs the check must survive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meshproof.checks.nftables import native_istio_redirect, no_istio_iptables_chains
from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.iptables import parse_iptables_chains
from meshproof.evidence.nftables import Ruleset, parse_ruleset

NFT = Path(__file__).resolve().parents[1] / "fixtures_data" / "nft"


def fixture(name: str) -> str:
    return (NFT / name).read_text()


def without_rule(text: str, chain: str, needle: str) -> str:
    """The same real output with one rule of `chain` whose JSON contains `needle` removed."""
    document = json.loads(text)
    items = document["nftables"]
    doomed = [
        i
        for i, item in enumerate(items)
        if "rule" in item and item["rule"]["chain"] == chain and needle in json.dumps(item["rule"]["expr"])
    ]
    assert len(doomed) == 1, doomed
    del items[doomed[0]]
    return json.dumps(document)


def test_parser_keeps_tables_chains_hooks_and_rule_order() -> None:
    ruleset = parse_ruleset(fixture("default-sidecar.json"))
    assert ruleset.nft_version == "1.0.6"
    assert ruleset.table_names == ["inet istio-proxy-nat"]
    table = ruleset.table("inet", "istio-proxy-nat")
    assert table is not None
    assert [c.name for c in table.base_chains(hook="prerouting")] == ["prerouting"]
    output = table.chains["output"]
    assert (output.type, output.hook, output.priority, output.policy) == ("nat", "output", -100, "accept")
    assert table.chains["istio-output"].rules[-1].text == "jump istio-redirect"
    assert table.chains["istio-in-redirect"].rules[0].text == "meta l4proto tcp redirect to :15006"


def test_default_sidecar_capture_passes_and_names_both_paths() -> None:
    verdict = native_istio_redirect(parse_ruleset(fixture("default-sidecar.json")))
    assert verdict.ok, verdict.reason
    assert "outbound TCP to :15001 via output -> istio-output -> istio-redirect" in verdict.reason
    assert "inbound TCP to :15006 via prerouting -> istio-inbound -> istio-in-redirect" in verdict.reason


def test_missing_inbound_redirect_fails() -> None:
    text = without_rule(fixture("default-sidecar.json"), "istio-in-redirect", "15006")
    verdict = native_istio_redirect(parse_ruleset(text))
    assert not verdict.ok
    assert "inbound TCP is not redirected to :15006" in verdict.reason


def test_other_ports_are_checked_not_assumed() -> None:
    ruleset = parse_ruleset(fixture("default-sidecar.json"))
    verdict = native_istio_redirect(ruleset, outbound_port=15011, inbound_port=15016)
    assert not verdict.ok
    assert "outbound TCP is not redirected to :15011" in verdict.reason
    assert "inbound TCP is not redirected to :15016" in verdict.reason


def test_iptables_capture_through_iptables_nft_is_not_native_nftables() -> None:
    ruleset = parse_ruleset(fixture("iptables-nft-istio.json"))
    verdict = native_istio_redirect(ruleset)
    assert not verdict.ok
    assert "no table inet istio-proxy-nat in the ruleset (tables: ip nat)" in verdict.reason
    absent = no_istio_iptables_chains(ruleset, iptables_read=True)
    assert not absent.ok and "ip nat ISTIO_REDIRECT" in absent.reason


def test_iptables_legacy_chains_fail_the_absence_check() -> None:
    chains = parse_iptables_chains(fixture("iptables-legacy-save.txt"))
    assert "nat ISTIO_OUTPUT" in chains and "nat ISTIO_REDIRECT" in chains and "nat OUTPUT" in chains
    native = parse_ruleset(fixture("default-sidecar.json"))
    assert no_istio_iptables_chains(native, iptables_read=True).ok
    verdict = no_istio_iptables_chains(native, chains, iptables_read=True)
    assert not verdict.ok and "iptables nat ISTIO_OUTPUT" in verdict.reason


def test_unread_legacy_iptables_is_not_a_clean_netns() -> None:
    """No legacy chain seen proves nothing when the legacy tool did not run or failed: the check fails and
    says why, though the nftables side (Istio's own native ruleset) is clean."""
    native = parse_ruleset(fixture("default-sidecar.json"))
    status = "iptables-legacy-save missing, ip6tables-legacy-save missing"
    verdict = no_istio_iptables_chains(native, (), iptables_read=False, iptables_status=status)
    assert not verdict.ok
    assert f"iptables-legacy rules were not read ({status})" in verdict.reason
    # Chains found are still named when the read was incomplete.
    chains = parse_iptables_chains(fixture("iptables-legacy-save.txt"))
    partial = no_istio_iptables_chains(native, chains, iptables_read=False, iptables_status=status)
    assert not partial.ok and "iptables nat ISTIO_OUTPUT" in partial.reason
    read = "iptables-legacy-save exit 0, ip6tables-legacy-save exit 0"
    clean = no_istio_iptables_chains(native, (), iptables_read=True, iptables_status=read)
    assert clean.ok and f"or iptables (0 chain(s); {read})" in clean.reason


def test_tproxy_mode_is_named() -> None:
    verdict = native_istio_redirect(parse_ruleset(fixture("tproxy.json")))
    assert not verdict.ok
    assert "interception mode TPROXY" in verdict.reason


@pytest.mark.parametrize(
    "bad",
    [None, "", 42, {"nftables": []}, "not a ruleset"],
    ids=["none", "empty-string", "int", "dict", "string"],
)
def test_check_never_raises_on_bad_input(bad: object) -> None:
    verdict = native_istio_redirect(bad)  # type: ignore[arg-type]
    assert not verdict.ok and "expected a parsed nftables Ruleset" in verdict.reason
    assert not no_istio_iptables_chains(bad, iptables_read=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [0, 70000, "15001", None, True])
def test_check_rejects_bad_ports(port: object) -> None:
    ruleset = parse_ruleset(fixture("default-sidecar.json"))
    verdict = native_istio_redirect(ruleset, outbound_port=port)  # type: ignore[arg-type]
    assert not verdict.ok and "outbound_port must be a TCP port number" in verdict.reason


def test_check_survives_odd_expressions() -> None:
    """Statements of shapes the walker does not know are carried, never crash it."""
    document = json.loads(fixture("default-sidecar.json"))
    for item in document["nftables"]:
        if "rule" in item and item["rule"]["chain"] == "istio-output":
            item["rule"]["expr"] = [*item["rule"]["expr"], {"match": "weird"}, ["list"], {"jump": None}]
    verdict = native_istio_redirect(parse_ruleset(json.dumps(document)))
    assert isinstance(verdict.ok, bool) and verdict.reason


def test_an_empty_ruleset_names_no_tables() -> None:
    ruleset = parse_ruleset('{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}')
    assert ruleset == Ruleset(tables=(), nft_version="1.0.6")
    assert "(tables: none)" in native_istio_redirect(ruleset).reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table inet istio-proxy-nat {", "not JSON (was `nft -j` used?)"),
        ("[]", 'no "nftables" list'),
        (
            '{"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "expr": []}}]}',
            "not listed",
        ),
        (
            '{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "c"}}]}',
            "belongs to no listed table",
        ),
        ('{"nftables": [{"table": {"family": "inet"}}]}', "lacks family, name"),
        ('{"nftables": [{"a": 1, "b": 2}]}', "not a one-key object"),
    ],
)
def test_parser_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(EvidenceParseError, match=re.escape(message)):
        parse_ruleset(text)


def test_iptables_save_parser_rejects_other_text() -> None:
    with pytest.raises(EvidenceParseError, match="outside a \\*table block"):
        parse_iptables_chains(":ISTIO_OUTPUT - [0:0]\n")
    with pytest.raises(EvidenceParseError, match="not iptables-save output"):
        parse_iptables_chains("*nat\nhello\n")
