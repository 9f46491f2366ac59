"""Parser for `iptables-save` / `ip6tables-save`: the chains each table declares.

Format (iptables-save(8)): `*<table>` opens a table, `:<CHAIN> <policy> [<packets>:<bytes>]` declares a
chain, `-A <CHAIN> ...` appends a rule, `COMMIT` closes the table; `#` lines are comments. Only chain names
are kept: the nftables suite needs to know whether Istio's iptables chains (ISTIO_*) exist at all.
"""

from __future__ import annotations

from meshproof.evidence.errors import EvidenceParseError


def parse_iptables_chains(text: str) -> list[str]:
    """`<table> <chain>` for every chain declared or appended to, in order of first appearance."""
    if not isinstance(text, str):
        raise EvidenceParseError(f"iptables-save output must be text, got {type(text).__name__}")
    chains: list[str] = []
    table: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if line == "COMMIT":
            table = None
            continue
        if line.startswith((":", "-A ", "-I ")):
            if table is None:
                raise EvidenceParseError(
                    f"iptables-save line {number} is outside a *table block: {line[:80]!r}"
                )
            name = line[1:].split()[0] if line.startswith(":") else line.split()[1]
            entry = f"{table} {name}"
            if entry not in chains:
                chains.append(entry)
            continue
        raise EvidenceParseError(f"iptables-save line {number} is not iptables-save output: {line[:80]!r}")
    return chains
