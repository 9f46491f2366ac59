"""The nftables and istio-csr suites collect without a cluster, list their behaviours, and a run without the
feature (or in the other mode) reports them as unsupported, never as passes.

Same method as test_suites_collect.py (pytest in a subprocess, a kubeconfig that does not exist, a plugin
printing the skip markers the run plugin adds). What this cannot show: that the tests pass on a cluster.
"""

from __future__ import annotations

from pathlib import Path

from test_suites_collect import collect, items

NFTABLES = "suites/conformance/test_nftables.py::"
ISTIO_CSR = "suites/conformance/test_istio_csr.py::"
SUITES = ("suites/conformance/test_nftables.py", "suites/conformance/test_istio_csr.py")


def test_nftables_marker_lists_every_behaviour(tmp_path: Path) -> None:
    found = items(collect(tmp_path, "-m", "nftables", "--mode", "sidecar", "--features", "nftables", *SUITES))
    assert set(found) == {
        f"{NFTABLES}test_injected_init_container_requests_native_nftables",
        f"{NFTABLES}test_pod_netns_redirects_with_native_nftables",
        f"{NFTABLES}test_pod_netns_has_no_iptables_capture",
        f"{NFTABLES}test_excluded_port_has_no_redirect_in_the_pod_netns",
        f"{NFTABLES}test_strict_call_through_the_capture_carries_the_client_identity",
    }
    assert all(reason == "" for reason in found.values()), found


def test_istio_csr_marker_lists_every_behaviour(tmp_path: Path) -> None:
    found = items(
        collect(tmp_path, "-m", "istio_csr", "--mode", "sidecar", "--features", "istio-csr", *SUITES)
    )
    names = {nodeid.removeprefix(ISTIO_CSR) for nodeid in found}
    for behaviour in (
        "test_workload_leaves_chain_to_the_cert_manager_issuer",
        "test_published_root_is_the_cert_manager_ca",
        "test_istiod_serves_no_ca",
        "test_certificate_requests_name_the_workload_identities",
        "test_mtls_still_holds_with_istio_csr",
    ):
        assert {f"{behaviour}[sidecar]", f"{behaviour}[ambient]"} <= names
        assert found[f"{ISTIO_CSR}{behaviour}[sidecar]"] == ""
        assert found[f"{ISTIO_CSR}{behaviour}[ambient]"].startswith("unsupported:")
    assert "test_restarted_workload_gets_a_new_leaf_from_a_new_request" in names


def test_a_run_without_the_features_reports_them_unsupported(tmp_path: Path) -> None:
    found = items(collect(tmp_path, "-m", "nftables or istio_csr", "--mode", "sidecar", *SUITES))
    assert len(found) == 16
    for nodeid, reason in found.items():
        assert reason.startswith("unsupported:"), (nodeid, reason)
    assert any("needs feature 'nftables'" in r for r in found.values())
    assert any("needs feature 'istio-csr'" in r for r in found.values())
