"""Parser for `nft -j list ruleset`: the nftables ruleset of one network namespace, as typed records.

Format (libnftables JSON, `json_schema_version` 1, nft >= 0.9): one object `{"nftables": [...]}` whose
items each hold one key: `metainfo`, `table`, `chain`, `rule`, `set`, `map`, `element`, `flowtable`,
`counter`, ... A chain item names its family, table and name; a base chain also carries `type`, `hook`,
`prio` and `policy`. A rule item names its family, table and chain and lists its statements in `expr`
(`match`, `counter`, `jump`, `goto`, `return`, `accept`, `redirect`, `tproxy`, `mangle`, ...). Rules are
listed in evaluation order, after their chain. Items this parser has no use for (sets, maps, counters)
are skipped. Nothing here decides; meshproof.checks.nftables judges what the ruleset does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshproof.evidence.errors import EvidenceParseError

# The verdict statements that end evaluation of a chain (`jump` returns to the caller; `goto` does not).
TERMINAL_VERDICTS = ("return", "accept", "drop", "reject", "goto", "queue")


@dataclass(frozen=True)
class Rule:
    """One rule: its statements as libnftables wrote them, in order."""

    family: str
    table: str
    chain: str
    expr: tuple[Mapping[str, Any], ...]

    def statements(self, kind: str) -> list[Any]:
        """The argument of every statement of `kind` (e.g. all `match` bodies, or the `redirect` body)."""
        return [item[kind] for item in self.expr if isinstance(item, Mapping) and kind in item]

    def has(self, kind: str) -> bool:
        return any(isinstance(item, Mapping) and kind in item for item in self.expr)

    @property
    def jump_target(self) -> str | None:
        """The chain a `jump` or `goto` statement continues in, if the rule has one."""
        for kind in ("jump", "goto"):
            for body in self.statements(kind):
                if isinstance(body, Mapping) and isinstance(body.get("target"), str):
                    return str(body["target"])
        return None

    @property
    def text(self) -> str:
        """Short nft-like text for messages (`tcp dport != 15008 meta skuid 1337 jump istio-in-redirect`)."""
        return " ".join(describe_statement(item) for item in self.expr) or "<empty rule>"


@dataclass(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    type: str | None = None  # base chains only: filter, nat, route
    hook: str | None = None  # base chains only: prerouting, input, forward, output, postrouting
    priority: int | None = None
    policy: str | None = None
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Table:
    family: str
    name: str
    chains: Mapping[str, Chain] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.family} {self.name}"

    def base_chains(self, *, hook: str, chain_type: str | None = None) -> list[Chain]:
        """Base chains attached to `hook` (optionally of one type), lowest priority first."""
        found = [
            c for c in self.chains.values() if c.hook == hook and (chain_type is None or c.type == chain_type)
        ]
        return sorted(found, key=lambda c: c.priority if c.priority is not None else 0)


@dataclass(frozen=True)
class Ruleset:
    """Every table of a network namespace's ruleset, with their chains and rules."""

    tables: tuple[Table, ...]
    nft_version: str | None = None

    def table(self, family: str, name: str) -> Table | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)

    @property
    def table_names(self) -> list[str]:
        return [t.key for t in self.tables]

    def chain_names(self) -> list[str]:
        """`<family> <table> <chain>` for every chain (for messages and the iptables-chain check)."""
        return [f"{t.key} {c}" for t in self.tables for c in t.chains]


def parse_ruleset(text: str) -> Ruleset:
    """Parse the text of `nft -j list ruleset`. Raises EvidenceParseError naming what is wrong."""
    if not isinstance(text, str):
        raise EvidenceParseError(f"nft ruleset must be text, got {type(text).__name__}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceParseError(f"nft ruleset is not JSON (was `nft -j` used?): {exc}") from exc
    items = document.get("nftables") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        raise EvidenceParseError('nft ruleset JSON has no "nftables" list (not `nft -j list ruleset` output)')

    version: str | None = None
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    for position, item in enumerate(items):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise EvidenceParseError(f"nftables item {position} is not a one-key object: {_short(item)}")
        kind, body = next(iter(item.items()))
        if kind == "metainfo" and isinstance(body, Mapping):
            version = str(body.get("version")) if body.get("version") is not None else None
        elif kind == "table":
            family, name = _names(body, ("family", "name"), position)
            tables[(family, name)] = dict(body)
        elif kind == "chain":
            family, table, name = _names(body, ("family", "table", "name"), position)
            chains[(family, table, name)] = dict(body)
        elif kind == "rule":
            family, table, chain = _names(body, ("family", "table", "chain"), position)
            expr = body.get("expr")
            if not isinstance(expr, list):
                raise EvidenceParseError(f"nftables rule item {position} has no expr list: {_short(body)}")
            rules.setdefault((family, table, chain), []).append(Rule(family, table, chain, tuple(expr)))
    return Ruleset(tables=_assemble(tables, chains, rules), nft_version=version)


def _assemble(
    tables: Mapping[tuple[str, str], Mapping[str, Any]],
    chains: Mapping[tuple[str, str, str], Mapping[str, Any]],
    rules: Mapping[tuple[str, str, str], Sequence[Rule]],
) -> tuple[Table, ...]:
    for family, table, chain in rules:
        if (family, table, chain) not in chains:
            raise EvidenceParseError(f"nftables rule in chain {family} {table} {chain}, which is not listed")
    assembled: list[Table] = []
    for family, name in tables:
        table_chains: dict[str, Chain] = {}
        for (c_family, c_table, c_name), body in chains.items():
            if (c_family, c_table) != (family, name):
                continue
            priority = body.get("prio")
            table_chains[c_name] = Chain(
                family=family,
                table=name,
                name=c_name,
                type=_optional_str(body.get("type")),
                hook=_optional_str(body.get("hook")),
                priority=priority if isinstance(priority, int) else None,
                policy=_optional_str(body.get("policy")),
                rules=tuple(rules.get((family, name, c_name), ())),
            )
        assembled.append(Table(family=family, name=name, chains=table_chains))
    for family, table, chain in chains:
        if (family, table) not in tables:
            raise EvidenceParseError(f"nftables chain {family} {table} {chain} belongs to no listed table")
    return tuple(assembled)


def _names(body: Any, keys: Sequence[str], position: int) -> tuple[str, ...]:
    if not isinstance(body, Mapping):
        raise EvidenceParseError(f"nftables item {position} is not an object: {_short(body)}")
    values = tuple(body.get(key) for key in keys)
    if not all(isinstance(v, str) and v for v in values):
        raise EvidenceParseError(f"nftables item {position} lacks {', '.join(keys)}: {_short(body)}")
    return tuple(str(v) for v in values)


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


# --- rendering statements for messages ---------------------------------------------------------------


def describe_statement(item: Any) -> str:
    """nft-like text of one statement, for verdict reasons; falls back to compact JSON."""
    if not isinstance(item, Mapping) or len(item) != 1:
        return _short(item)
    kind, body = next(iter(item.items()))
    if kind == "match" and isinstance(body, Mapping):
        op = body.get("op", "==")
        left = describe_value(body.get("left"))
        right = describe_value(body.get("right"))
        return f"{left} {right}" if op in ("==", "in") else f"{left} {op} {right}"
    if kind in ("jump", "goto") and isinstance(body, Mapping):
        return f"{kind} {body.get('target')}"
    if kind == "redirect":
        port = body.get("port") if isinstance(body, Mapping) else None
        return f"redirect to :{port}" if port is not None else "redirect"
    if kind == "tproxy" and isinstance(body, Mapping):
        return f"tproxy to :{body.get('port')}"
    if body is None:
        return str(kind)  # return, accept, drop
    if kind == "counter":
        return "counter"
    return f"{kind} {_short(body)}"


def describe_value(value: Any) -> str:
    if isinstance(value, Mapping):
        if "meta" in value and isinstance(value["meta"], Mapping):
            key = value["meta"].get("key")
            return str(key) if key in ("iifname", "oifname", "mark") else f"meta {key}"
        if "payload" in value and isinstance(value["payload"], Mapping):
            payload = value["payload"]
            return f"{payload.get('protocol')} {payload.get('field')}"
        if "prefix" in value and isinstance(value["prefix"], Mapping):
            return f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
        if "set" in value and isinstance(value["set"], list):
            return "{ " + ", ".join(describe_value(v) for v in value["set"]) + " }"
        if "ct" in value and isinstance(value["ct"], Mapping):
            return f"ct {value['ct'].get('key')}"
    if isinstance(value, str | int):
        return str(value)
    return _short(value)
