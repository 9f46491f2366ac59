"""`meshproof plan` names what the nftables and istio-csr suites do at test time, and only when requested."""

from __future__ import annotations

from meshproof.config import load_config
from meshproof.mesh.plan import build_plan


def plan_text(**cli: object) -> str:
    return build_plan(load_config({"provider": "kind", **cli}, env={})).render_text()


def test_plan_lists_the_feature_suites_test_time_objects() -> None:
    text = plan_text(mode="sidecar", features="nftables,istio-csr")
    assert "# the feature suites also do, at test time (removed or put back when each test ends):" in text
    assert "privileged hostPID reader pod on that pod's node" in text
    assert "server-excluded" in text and "traffic.sidecar.istio.io/excludeInboundPorts=8080" in text
    assert "CertificateRequests in istio-system (no private key is read)" in text
    assert "csr-probe" in text


def test_plan_without_the_features_lists_nothing_extra() -> None:
    assert "feature suites also do" not in plan_text(mode="sidecar")


def test_openshift_reader_namespace_is_bound_to_the_privileged_scc() -> None:
    text = plan_text(
        provider="openshift", installer="sail", mode="sidecar", features="nftables", context=["c"]
    )
    assert "ClusterRole system:openshift:scc:privileged" in text
