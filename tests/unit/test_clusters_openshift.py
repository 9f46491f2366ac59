"""OpenShift prerequisites judged on realistic ClusterVersion and Network objects."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.clusters import ProvisionError
from meshproof.clusters.openshift import OpenShiftProvider, ocp_version, openshift_problems, routing_via_host
from meshproof.config import load_config
from meshproof.mesh.spec import MeshSpec

CLUSTER_VERSION_419 = {
    "apiVersion": "config.openshift.io/v1",
    "kind": "ClusterVersion",
    "metadata": {"name": "version"},
    "status": {
        "desired": {"version": "4.19.9", "image": "quay.io/openshift-release-dev/ocp-release@sha256:abc"},
        "history": [
            {"state": "Partial", "version": "4.19.9"},
            {"state": "Completed", "version": "4.19.7"},
            {"state": "Completed", "version": "4.18.20"},
        ],
    },
}


def network(routing: bool | None) -> dict[str, Any]:
    gateway = {} if routing is None else {"gatewayConfig": {"routingViaHost": routing}}
    return {
        "apiVersion": "operator.openshift.io/v1",
        "kind": "Network",
        "metadata": {"name": "cluster"},
        "spec": {
            "defaultNetwork": {
                "type": "OVNKubernetes",
                "ovnKubernetesConfig": {"genevePort": 6081, **gateway},
            }
        },
    }


def spec(mode: str, features: str = "") -> MeshSpec:
    return MeshSpec.from_config(
        load_config(
            {"provider": "openshift", "installer": "sail", "mode": mode, "features": features}, env={}
        )
    )


def test_version_is_the_newest_completed_update():
    assert ocp_version(CLUSTER_VERSION_419) == "4.19.7"
    assert ocp_version({"status": {"desired": {"version": "4.20.1"}}}) == "4.20.1"
    assert ocp_version(None) is None


def test_local_gateway_mode_is_read_from_the_network_operator():
    assert routing_via_host(network(True))
    assert not routing_via_host(network(False))
    assert not routing_via_host(network(None))  # shared gateway mode is the default


def test_ambient_on_a_ready_cluster_has_no_problems():
    assert openshift_problems(spec("ambient"), version="4.19.7", network=network(True)) == []


@pytest.mark.parametrize(
    ("version", "routing", "expected"),
    [
        ("4.18.20", True, "ambient on OpenShift needs OCP 4.19+ (found 4.18.20)"),
        ("4.19.7", False, "ambient on OpenShift needs OVN-Kubernetes local gateway mode"),
        ("4.19.7", None, "ambient on OpenShift needs OVN-Kubernetes local gateway mode"),
    ],
)
def test_ambient_is_refused_when_prerequisites_are_missing(version: str, routing: bool | None, expected: str):
    problems = openshift_problems(spec("ambient"), version=version, network=network(routing))
    assert problems and problems[0].startswith(expected)
    assert all("\n" not in p and "--mode sidecar" in p for p in problems)


def test_sidecar_does_not_need_local_gateway_mode_but_gie_needs_4_19():
    assert openshift_problems(spec("sidecar"), version="4.18.20", network=network(False)) == []
    problems = openshift_problems(spec("sidecar", "gie"), version="4.18.20", network=network(False))
    assert len(problems) == 1 and problems[0].startswith("--features gie needs the Gateway API CRDs")


class FakeOpenShift:
    def __init__(self, objects: dict[str, dict[str, Any] | None]) -> None:
        self.objects = objects

    def get(self, api: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get(kind)


def test_provider_refuses_with_one_line_naming_the_cluster():
    cluster = FakeOpenShift({"ClusterVersion": CLUSTER_VERSION_419, "Network": network(False)})
    with pytest.raises(ProvisionError) as info:
        OpenShiftProvider().check_clusters(spec("ambient"), {"cluster1": cluster})  # type: ignore[dict-item]
    assert str(info.value).startswith(
        "cluster cluster1: ambient on OpenShift needs OVN-Kubernetes local gateway mode"
    )


def test_provider_reports_the_version_of_a_ready_cluster():
    cluster = FakeOpenShift({"ClusterVersion": CLUSTER_VERSION_419, "Network": network(True)})
    facts = OpenShiftProvider().check_clusters(spec("ambient"), {"cluster1": cluster})  # type: ignore[dict-item]
    assert facts == {"cluster1": "OCP 4.19.7, OVN-Kubernetes local gateway mode"}


def test_provider_refuses_a_cluster_that_is_not_openshift():
    with pytest.raises(ProvisionError, match="does not look like OpenShift"):
        OpenShiftProvider().check_clusters(spec("sidecar"), {"cluster1": FakeOpenShift({})})  # type: ignore[dict-item]
