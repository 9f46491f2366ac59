"""Deploy-once-per-run orchestration against a fake cluster.

What the fake cannot prove: that server-side apply of these objects succeeds on a real API server, that
the pods become Ready, that istio-cni annotates them or that the Gateway gets Programmed: it reports
whatever state the test gives it. It does prove the order and completeness of what `deploy` asks for,
that it refuses pods the mesh did not enroll, and that the run-scoped counter removes the namespaces once,
after the last user, and keeps them when asked to.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshproof.workloads import (
    EnrollmentError,
    RenderOptions,
    SharedWorkloads,
    WorkloadClass,
    deploy,
    remove,
    workload_set,
)

RUN_ID = "20261126-064501-a3f9"


class FakeCluster:
    """Records calls; its pods carry the enrollment annotations each namespace's class label asks for,
    unless `unenrolled` names a namespace whose pods the mesh ignored."""

    def __init__(self, unenrolled: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.namespaces: dict[str, str] = {}  # name -> class
        self.unenrolled = unenrolled

    def apply(self, docs: Any, *, test_id: str | None = None) -> list[dict[str, Any]]:
        parsed = [d for d in yaml.safe_load_all(docs) if d] if isinstance(docs, str) else list(docs)
        for doc in parsed:
            if doc["kind"] == "Namespace":
                self.namespaces[doc["metadata"]["name"]] = doc["metadata"]["labels"][
                    "meshproof.io/workload-class"
                ]
        self.calls.append(("apply", tuple(f"{d['kind']}/{d['metadata']['name']}" for d in parsed), test_id))
        return parsed

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, wait: bool = False
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return self.namespaces.pop(name, None) is not None

    def wait_rollout(self, kind: str, name: str, namespace: str, *, timeout: float) -> dict[str, Any]:
        self.calls.append(("rollout", kind, namespace, name, timeout))
        return {}

    def wait_for_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        condition: str,
        *,
        status: str = "True",
        timeout: float,
    ) -> dict[str, Any]:
        self.calls.append(("condition", kind, namespace, name, condition, timeout))
        return {}

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        workload_class = WorkloadClass(self.namespaces[namespace])
        annotations: dict[str, str] = {}
        containers = [{"name": "app"}, {"name": "curl"}]
        if namespace != self.unenrolled:
            if workload_class is WorkloadClass.SIDECAR:
                annotations["sidecar.istio.io/status"] = "{}"
                containers.append({"name": "istio-proxy"})
            elif workload_class in (WorkloadClass.AMBIENT, WorkloadClass.WAYPOINT):
                annotations["ambient.istio.io/redirection"] = "enabled"
        name = f"{str(label_selector).removeprefix('app=')}-6d9f-x2k9q"
        return [{"metadata": {"name": name, "annotations": annotations}, "spec": {"containers": containers}}]


def test_deploy_applies_every_class_first_then_waits_for_each_workload_and_the_waypoint() -> None:
    cluster = FakeCluster()
    workloads = workload_set(RUN_ID, "ambient")
    deploy(cluster, workloads, RenderOptions(), rollout_timeout=240, waypoint_timeout=120)

    applies = [c for c in cluster.calls if c[0] == "apply"]
    assert len(applies) == 3 and cluster.calls[:3] == applies  # all applied before any wait
    assert all(test_id is None for *_, test_id in applies)  # run-scoped: no test id label
    assert "Gateway/waypoint" in applies[1][1]
    waits = [c for c in cluster.calls if c[0] in ("rollout", "condition")]
    ns = {c: workloads.namespace(c) for c in workloads.classes}
    assert waits == [
        ("rollout", "Deployment", ns[WorkloadClass.AMBIENT], "server", 240),
        ("rollout", "Deployment", ns[WorkloadClass.AMBIENT], "client", 240),
        ("condition", "Gateway", ns[WorkloadClass.WAYPOINT], "waypoint", "Programmed", 120),
        ("rollout", "Deployment", ns[WorkloadClass.WAYPOINT], "server", 240),
        ("rollout", "Deployment", ns[WorkloadClass.WAYPOINT], "client", 240),
        ("rollout", "Deployment", ns[WorkloadClass.OUT_OF_MESH], "client", 240),
    ]


def test_deploy_refuses_a_class_the_mesh_did_not_enroll() -> None:
    workloads = workload_set(RUN_ID, "sidecar")
    cluster = FakeCluster(unenrolled=workloads.namespace(WorkloadClass.SIDECAR))
    with pytest.raises(EnrollmentError, match=r"sidecar:.*server.*no injected sidecar"):
        deploy(cluster, workloads, RenderOptions(), rollout_timeout=1, waypoint_timeout=1)


def test_remove_deletes_the_run_namespaces() -> None:
    cluster = FakeCluster()
    workloads = workload_set(RUN_ID, "sidecar")
    deploy(cluster, workloads, RenderOptions(), rollout_timeout=1, waypoint_timeout=1)
    remove(cluster, workloads)
    assert cluster.namespaces == {}
    assert [c for c in cluster.calls if c[0] == "delete"] == [
        ("delete", "Namespace", n) for n in workloads.namespaces
    ]


def test_shared_workloads_are_removed_once_after_the_last_user(tmp_path: Path) -> None:
    """Three SharedWorkloads on one state dir stand in for three xdist workers of one run."""
    events: list[str] = []
    users = [SharedWorkloads(tmp_path) for _ in range(3)]
    for index, user in enumerate(users):
        user.acquire(functools.partial(events.append, f"deploy {index}"))
    assert users[0].release(lambda: events.append("remove"), failed=False, keep_on_failure=False) is False
    assert users[1].release(lambda: events.append("remove"), failed=False, keep_on_failure=False) is False
    assert users[2].release(lambda: events.append("remove"), failed=False, keep_on_failure=False) is True
    assert events == ["deploy 0", "deploy 1", "deploy 2", "remove"]


def test_a_failure_in_any_user_keeps_the_workloads_when_asked(tmp_path: Path) -> None:
    events: list[str] = []
    first, last = SharedWorkloads(tmp_path), SharedWorkloads(tmp_path)
    first.acquire(lambda: None)
    last.acquire(lambda: None)
    first.release(lambda: events.append("remove"), failed=True, keep_on_failure=True)
    assert last.release(lambda: events.append("remove"), failed=False, keep_on_failure=True) is False
    assert events == []


def test_failures_do_not_keep_anything_without_keep_on_failure(tmp_path: Path) -> None:
    events: list[str] = []
    user = SharedWorkloads(tmp_path)
    user.acquire(lambda: None)
    assert user.release(lambda: events.append("remove"), failed=True, keep_on_failure=False) is True
    assert events == ["remove"]


def test_a_failed_deploy_does_not_count_as_a_user(tmp_path: Path) -> None:
    events: list[str] = []
    broken, healthy = SharedWorkloads(tmp_path), SharedWorkloads(tmp_path)

    def fail() -> None:
        raise EnrollmentError("pod server-1 has no injected sidecar")

    with pytest.raises(EnrollmentError):
        broken.acquire(fail)
    healthy.acquire(lambda: None)
    assert healthy.release(lambda: events.append("remove"), failed=False, keep_on_failure=False) is True
    assert events == ["remove"]
