"""The control-plane tier: a real kube-apiserver, etcd, controller-manager, scheduler, KWOK and istiod.

scripts/control-plane/up.sh starts them on loopback and writes `<state>/env` (KUBECONFIG, ports, the bin
directory); these tests read it from $MESHPROOF_CONTROL_PLANE_DIR (default .cache/control-plane).
scripts/test-engine.sh brings the tier up around the test run and stops it after. Without a running tier
every test here skips naming the command; with MESHPROOF_REQUIRE_REAL_TOOLS=1 (CI) that is a failure.

What the tier is: Kubernetes v1.34.4 and KWOK v0.8.0 as released, the Istio 1.27.9 / Gateway API v1.3.0 /
GIE CRDs as released, and an istiod built from a 2026 master pseudo-version (Istio 1.30 development: no
1.27 istiod is served by the Go module proxy). So the CRD schemas speak for 1.27; istiod's webhook
messages, status conditions and derived config speak for istiod's mechanics, which each test names.
No data plane runs: KWOK pods are Ready without containers, so nothing here proves traffic behaviour.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fixtures_data.control_plane import ControlPlane, running_control_plane

from meshproof.kube import Cluster
from meshproof.kube_objects import selector_for_run


@pytest.fixture(scope="session")
def control_plane() -> ControlPlane:
    return running_control_plane()


@pytest.fixture
def run_id() -> str:
    return f"cp-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cluster(control_plane: ControlPlane, run_id: str) -> Iterator[Cluster]:
    """meshproof's Cluster on the tier, its objects removed by run id afterwards."""
    with control_plane.cluster(run_id) as c:
        yield c
        c.delete_labelled(selector_for_run(run_id))


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A fresh namespace labelled with the run id (deleted with it)."""
    name = f"{cluster.run_id}-{uuid.uuid4().hex[:4]}"
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
    return name
