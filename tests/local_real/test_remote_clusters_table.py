"""The `istioctl remote-clusters` parser on the table Go's text/tabwriter really writes.

tests/fixtures_data/go/remote_clusters_table.go prints rows with istioctl 1.27.9's exact writer settings and
format string (istio@1.27.9 istioctl/pkg/proxyconfig/clusters.go: `Init(out, 0, 8, 5, ' ', 0)`,
"%s\\t%s\\t%s\\t%s\\n"), built and run with the Go toolchain (stdlib only, no network). The config cluster's
empty SECRET cell is the case a whitespace-splitting parser gets wrong.
What this cannot prove: which rows a real istiod reports; only a two-cluster run shows that.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fixtures_data.real_tools import real_tool

from meshproof.checks.multicluster import peer_absent, peer_synced
from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.remote_clusters import RemoteCluster, parse_remote_clusters

pytestmark = pytest.mark.local_real

PROGRAM = Path(__file__).resolve().parents[1] / "fixtures_data" / "go" / "remote_clusters_table.go"
ISTIOD = "istiod-7f9c6d8b5-x2x7q.istio-system"


def table(*rows: str) -> str:
    go = real_tool("go")
    result = subprocess.run(
        [str(go), "run", str(PROGRAM), *rows], capture_output=True, text=True, timeout=180, check=True
    )
    return result.stdout


def test_rows_are_read_by_column_even_with_an_empty_secret() -> None:
    text = table(
        f"cluster1||synced|{ISTIOD}",
        f"cluster2|istio-system/istio-remote-secret-cluster2|synced|{ISTIOD}",
        f"cluster3|istio-system/istio-remote-secret-cluster3|timeout|{ISTIOD}",
    )
    rows = parse_remote_clusters(text)
    assert rows == [
        RemoteCluster("cluster1", "", "synced", ISTIOD),
        RemoteCluster("cluster2", "istio-system/istio-remote-secret-cluster2", "synced", ISTIOD),
        RemoteCluster("cluster3", "istio-system/istio-remote-secret-cluster3", "timeout", ISTIOD),
    ]
    assert peer_synced(rows, "cluster2")
    assert not peer_synced(rows, "cluster1") and not peer_synced(rows, "cluster3")
    assert not peer_absent(rows, "cluster2")


def test_a_table_without_the_peer() -> None:
    rows = parse_remote_clusters(table(f"cluster1||synced|{ISTIOD}"))
    assert peer_absent(rows, "cluster2") and not peer_synced(rows, "cluster2")


def test_the_header_alone_is_an_empty_list_and_other_text_an_error() -> None:
    assert parse_remote_clusters(table()) == []
    with pytest.raises(EvidenceParseError):
        parse_remote_clusters('Error: no running Istio pods in "istio-system"\n')
    with pytest.raises(EvidenceParseError):
        parse_remote_clusters("")
