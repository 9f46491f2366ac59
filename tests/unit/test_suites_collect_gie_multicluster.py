"""`pytest --collect-only -m gie` and `-m multicluster` list the behaviours, without a cluster; a run without
the feature reports them as unsupported, never as passes (the run plugin's gating).

Uses the subprocess collection helper of test_suites_collect. What this cannot show: that they pass.
"""

from __future__ import annotations

from pathlib import Path

from test_suites_collect import collect, items

GIE = "suites/conformance/test_gie.py::"
MC = "suites/conformance/test_multicluster.py::"

GIE_BEHAVIOURS = {
    "test_route_to_the_pool_is_resolved_and_the_pool_accepted",
    "test_gateway_proxy_calls_the_endpoint_picker",
    "test_replies_through_the_gateway_name_the_serving_pool_pod",
    "test_saturated_pod_gets_no_requests_from_the_picker",
    "test_lora_adapter_request_lands_on_the_pod_that_serves_it",
    "test_unknown_model_is_refused",
    "test_route_fails_closed_without_the_endpoint_picker",
}
MC_BOTH_MODES = {
    "test_server_only_in_cluster_two_answers_with_the_cluster_one_clients_identity",
    "test_istiod_in_each_cluster_has_synced_its_peer",
    "test_without_the_remote_secret_cluster_one_loses_cluster_twos_endpoints",
    "test_replies_come_from_both_clusters",
    "test_traffic_fails_over_to_cluster_two",
    "test_policy_in_cluster_two_denies_the_cluster_one_client",
}
MC_AMBIENT = {
    "test_ambient_service_without_the_global_label_is_not_reachable_across",
    "test_ambient_ztunnel_in_cluster_one_knows_cluster_two_workloads",
}


def test_gie_lists_its_behaviours_and_is_unsupported_without_the_feature(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    without = items(collect(tmp_path / "a", "-m", "gie", "suites/conformance"))
    assert set(without) == {GIE + name for name in GIE_BEHAVIOURS}
    assert all(reason.startswith("unsupported:") and "gie" in reason for reason in without.values())
    with_feature = items(collect(tmp_path / "b", "-m", "gie", "--features", "gie", "suites/conformance"))
    assert set(with_feature) == set(without)
    assert all(reason == "" for reason in with_feature.values()), with_feature


def test_multicluster_lists_its_behaviours_per_mode(tmp_path: Path) -> None:
    found = items(
        collect(
            tmp_path,
            "-m",
            "multicluster",
            "--features",
            "multicluster",
            "--mode",
            "ambient",
            "suites/conformance",
        )
    )
    expected = {f"{MC}{name}[{mode}]" for name in MC_BOTH_MODES for mode in ("sidecar", "ambient")}
    expected |= {f"{MC}{name}[ambient]" for name in MC_AMBIENT}
    assert set(found) == expected
    assert all(found[n].startswith("unsupported:") for n in found if n.endswith("[sidecar]"))
    assert all(found[n] == "" for n in found if n.endswith("[ambient]"))
