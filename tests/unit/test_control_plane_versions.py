"""The control-plane tier's pins agree with the contract tier's (one istio.io/istio pseudo-version)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    text = (REPO / "scripts" / "control-plane" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.M))


def test_istiod_is_built_from_the_pseudo_version_the_contract_tier_pins() -> None:
    istio = pins()["ISTIO_MODULE_VERSION"]
    versions = (REPO / ".ci" / "contract" / "versions.txt").read_text()
    contract = re.search(r"^istio\s+istio\.io/istio\s+(\S+)", versions, re.M)
    checker = re.search(
        r"^\s*istio\.io/istio (\S+)", (REPO / ".ci/contract/checker/go.mod").read_text(), re.M
    )
    assert contract and checker
    assert istio == contract.group(1) == checker.group(1)


def test_every_component_is_pinned_to_an_exact_version() -> None:
    found = pins()
    assert set(found) == {"ETCD_VERSION", "KUBERNETES_VERSION", "KWOK_VERSION", "ISTIO_MODULE_VERSION"}
    assert all(re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9a-f.-]+)?", v) for v in found.values()), found
