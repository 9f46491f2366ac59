"""The artifacts dump of a failed test, collected from a real apiserver and KWOK kubelet.

ArtifactDumper is what the artifacts plugin calls when a test fails; here the "failure" is planted: a test
id's objects exist, a pod runs, the scheduler wrote events, and the token controller put a real
ServiceAccount token (a JWT signed by the tier's key) into a Secret. The dump must hold the objects, the
pod summary, the logs the kubelet endpoint serves and the events, and never the token.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fixtures_data.control_plane import ControlPlane

from meshproof.artifacts import ArtifactDumper
from meshproof.kube import Cluster

pytestmark = pytest.mark.control_plane


def test_a_failed_tests_dump_holds_objects_pods_logs_events_and_no_token(
    cluster: Cluster, namespace: str, control_plane: ControlPlane, tmp_path: Path
) -> None:
    test_id = "suites-conformance-test_planted-failure"
    token_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "planted-token",
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": "default"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "planted", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "planted"}},
            "template": {
                "metadata": {"labels": {"app": "planted"}},
                "spec": {
                    "nodeSelector": {"type": "kwok"},
                    "containers": [{"name": "app", "image": "x.invalid/a:1"}],
                },
            },
        },
    }
    wait_for_sa = cluster.wait_for(
        "v1", "ServiceAccount", "default", namespace, lambda sa: sa, "default ServiceAccount", timeout=60
    )
    assert wait_for_sa
    cluster.apply([token_secret, deployment], test_id=test_id)
    cluster.wait_rollout("Deployment", "planted", namespace, timeout=90)
    filled = cluster.wait_for(
        "v1",
        "Secret",
        "planted-token",
        namespace,
        lambda s: (s.get("data") or {}).get("token"),
        "token filled in by the token controller",
        timeout=60,
    )
    token = base64.b64decode(filled["data"]["token"]).decode()
    assert token.count(".") == 2  # a JWT

    dump = ArtifactDumper(tmp_path).dump(test_id, [cluster])

    assert dump.problems == []
    root = dump.path / "control-plane"
    written = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert f"objects/{namespace}/Deployment.planted.yaml" in written
    assert f"objects/{namespace}/Secret.planted-token.yaml" in written
    pod = cluster.pods(namespace, "app=planted")[0]["metadata"]["name"]
    assert "Running" in (root / "pods" / namespace / "_summary.txt").read_text()
    served = control_plane.kwok_log()
    assert (root / "logs" / namespace / pod / "app.log").read_text() == served
    assert "Scheduled" in (root / "events" / f"{namespace}.txt").read_text()
    everything = "".join(p.read_text() for p in dump.path.rglob("*") if p.is_file())
    assert token not in everything and filled["data"]["token"] not in everything
    assert token.split(".")[1] not in everything  # not even the JWT's claims
