"""Failure artifacts: what a dump contains, that secrets are redacted in the files, the cap, and the plugin.

The cluster here is an in-memory stand-in with `Cluster`'s read methods (find_labelled, pods, logs,
events) holding realistic objects. What it cannot prove: that a real cluster's sweep finds every labelled
kind (test_kube_cluster covers the sweep against a fake API server, not a real one), or the volume and
timing of a real dump.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshproof.artifacts import ArtifactDumper, DumpSource, sources_from, unique_sources
from meshproof.kube_objects import RUN_ID_LABEL, TEST_ID_LABEL

TEST_ID = "test-deny-all-1a2b3c"
SA_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1wIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Zm9vOmJhciJ9.c2lnbmF0dXJl"
)
LABELS = {RUN_ID_LABEL: "r1", TEST_ID_LABEL: TEST_ID}


def _objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mp-authz", "labels": LABELS}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "httpbin",
                "namespace": "mp-authz",
                "labels": LABELS,
                "managedFields": [{"manager": "meshproof", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "httpbin"}}},
            "status": {"replicas": 1, "readyReplicas": 0},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "jwt-key", "namespace": "mp-authz", "labels": LABELS},
            "type": "Opaque",
            "data": {"token": base64.b64encode(SA_TOKEN.encode()).decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "remote-kubeconfig", "namespace": "istio-system", "labels": LABELS},
            "data": {
                "kubeconfig": yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [{"name": "west", "cluster": {"server": "https://172.18.0.3:6443"}}],
                        "users": [{"name": "west", "user": {"token": "kubeconfig-token-unique-77"}}],
                        "contexts": [{"name": "west", "context": {"cluster": "west", "user": "west"}}],
                    }
                )
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "mp-reader", "labels": LABELS},
            "rules": [],
        },
    ]


HTTPBIN_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "httpbin-5d7f-abcde", "namespace": "mp-authz", "labels": {"app": "httpbin"}},
    "spec": {
        "initContainers": [{"name": "istio-init"}],
        "containers": [{"name": "httpbin"}, {"name": "istio-proxy"}],
    },
    "status": {
        "phase": "Running",
        "initContainerStatuses": [{"name": "istio-init", "ready": True, "restartCount": 0}],
        "containerStatuses": [
            {
                "name": "httpbin",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
            },
            {"name": "istio-proxy", "ready": True, "restartCount": 0},
        ],
    },
}


class FakeCluster:
    """Cluster's read side over fixed data; records what it was asked."""

    def __init__(self, name: str = "kind-meshproof", broken_logs: bool = False) -> None:
        self.name = name
        self.objects = _objects()
        self.pod_list = {"mp-authz": [HTTPBIN_POD], "istio-system": [], "elsewhere": [HTTPBIN_POD]}
        self.broken_logs = broken_logs
        self.asked: list[str] = []

    def find_labelled(self, label_selector: str) -> list[dict[str, Any]]:
        self.asked.append(f"find {label_selector}")
        key, _, value = label_selector.partition("=")
        return [o for o in self.objects if o["metadata"].get("labels", {}).get(key) == value]

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(f"pods {namespace}")
        return self.pod_list.get(namespace, [])

    def events(self, namespace: str, field_selector: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(f"events {namespace}")
        return [
            {
                "kind": "Event",
                "metadata": {"name": "httpbin.1", "namespace": namespace},
                "involvedObject": {"kind": "Pod", "name": "httpbin-5d7f-abcde"},
                "type": "Warning",
                "reason": "BackOff",
                "message": "Back-off restarting failed container httpbin",
                "count": 4,
                "lastTimestamp": "2026-11-26T06:45:09Z",
            }
        ]

    def logs(
        self,
        pod: str,
        namespace: str,
        container: str | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> str:
        self.asked.append(f"logs {namespace}/{pod}/{container}{' previous' if previous else ''}")
        if self.broken_logs and container == "istio-proxy":
            raise RuntimeError("container istio-proxy is waiting to start")
        if previous:
            return f"panic: upstream rejected Authorization: Bearer {SA_TOKEN}\n"
        return f"{container} started\n"


def test_the_fake_cluster_and_the_real_one_satisfy_the_dump_protocol():
    from meshproof.kube import Cluster

    assert isinstance(FakeCluster(), DumpSource)
    assert all(hasattr(Cluster, m) for m in ("find_labelled", "pods", "events", "logs"))


def test_a_dump_holds_the_tests_objects_pods_logs_and_events_with_secrets_redacted(tmp_path: Path):
    cluster = FakeCluster()
    dump = ArtifactDumper(tmp_path).dump(TEST_ID, [cluster], extra_namespaces={"istio-system"})
    root = tmp_path / "artifacts" / TEST_ID
    assert dump.path == root and dump.problems == []
    base = root / "kind-meshproof"
    files = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
    assert files == [
        "events/istio-system.txt",
        "events/istio-system.yaml",
        "events/mp-authz.txt",
        "events/mp-authz.yaml",
        "logs/mp-authz/httpbin-5d7f-abcde/httpbin.log",
        "logs/mp-authz/httpbin-5d7f-abcde/httpbin.previous.log",
        "logs/mp-authz/httpbin-5d7f-abcde/istio-init.log",
        "logs/mp-authz/httpbin-5d7f-abcde/istio-proxy.log",
        "objects/_cluster/ClusterRole.mp-reader.yaml",
        "objects/_cluster/Namespace.mp-authz.yaml",
        "objects/istio-system/ConfigMap.remote-kubeconfig.yaml",
        "objects/mp-authz/Deployment.httpbin.yaml",
        "objects/mp-authz/Secret.jwt-key.yaml",
        "pods/istio-system/_summary.txt",
        "pods/mp-authz/_summary.txt",
        "pods/mp-authz/httpbin-5d7f-abcde.yaml",
    ]
    assert "pods elsewhere" not in cluster.asked  # only namespaces the test touched

    everything = "".join(p.read_text() for p in root.rglob("*") if p.is_file())
    for secret in (
        SA_TOKEN[:30],
        base64.b64encode(SA_TOKEN.encode()).decode()[:30],
        "kubeconfig-token-unique-77",
    ):
        assert secret not in everything

    secret_obj = yaml.safe_load((base / "objects/mp-authz/Secret.jwt-key.yaml").read_text())
    assert secret_obj["data"] == {"token": f"<redacted: {len(SA_TOKEN)} bytes>"}
    kubeconfig_cm = yaml.safe_load(
        (base / "objects/istio-system/ConfigMap.remote-kubeconfig.yaml").read_text()
    )
    assert "server: https://172.18.0.3:6443" in kubeconfig_cm["data"]["kubeconfig"]
    deployment = yaml.safe_load((base / "objects/mp-authz/Deployment.httpbin.yaml").read_text())
    assert "managedFields" not in deployment["metadata"] and deployment["status"]["readyReplicas"] == 0

    previous = (base / "logs/mp-authz/httpbin-5d7f-abcde/httpbin.previous.log").read_text()
    assert previous == "panic: upstream rejected Authorization: <redacted>\n"
    assert (base / "pods/mp-authz/_summary.txt").read_text() == (
        "httpbin-5d7f-abcde: Running, 1/2 ready, httpbin waiting (CrashLoopBackOff: back-off 20s), "
        "httpbin restarted 2x\n"
    )
    assert (base / "events/mp-authz.txt").read_text() == (
        "2026-11-26T06:45:09Z Warning BackOff Pod/httpbin-5d7f-abcde: "
        "Back-off restarting failed container httpbin (x4)\n"
    )
    readme = (root / "README.txt").read_text()
    assert f"test id: {TEST_ID}" in readme and "istio-system" in readme


def test_a_part_that_fails_is_noted_and_the_rest_still_collected(tmp_path: Path):
    dump = ArtifactDumper(tmp_path).dump(TEST_ID, [FakeCluster(broken_logs=True)])
    assert dump.problems == [
        "kind-meshproof: logs of mp-authz/httpbin-5d7f-abcde container istio-proxy: RuntimeError: "
        "container istio-proxy is waiting to start"
    ]
    base = dump.path / "kind-meshproof"
    assert (base / "logs/mp-authz/httpbin-5d7f-abcde/httpbin.previous.log").exists()
    assert (base / "events/mp-authz.txt").exists()
    assert "could not collect:" in (dump.path / "README.txt").read_text()


def test_every_cluster_gets_its_own_folder_and_a_second_dump_does_not_overwrite(tmp_path: Path):
    dumper = ArtifactDumper(tmp_path)
    first = dumper.dump(TEST_ID, [FakeCluster("kind-east"), FakeCluster("kind-west")])
    second = dumper.dump(TEST_ID, [FakeCluster("kind-east")])
    assert sorted(p.name for p in first.path.iterdir()) == ["README.txt", "kind-east", "kind-west"]
    assert second.path.name == f"{TEST_ID}-2"


def test_without_a_test_id_only_registered_namespaces_are_collected(tmp_path: Path):
    cluster = FakeCluster()
    dump = ArtifactDumper(tmp_path).dump(
        None, [cluster], extra_namespaces=["mp-authz"], dirname="tests_x.py__t"
    )
    assert not any(a.startswith("find") for a in cluster.asked)
    assert (dump.path / "kind-meshproof/pods/mp-authz/_summary.txt").exists()
    assert not (dump.path / "kind-meshproof/objects").exists()


def test_a_cluster_named_twice_is_dumped_once(tmp_path: Path):
    """Issue 14 item 7: the run against a real istiod wrote `clusters: cluster1, cluster1`."""
    cluster = FakeCluster("cluster1")
    assert unique_sources(cluster, {"cluster1": cluster}) == [cluster]
    # a second object for the same cluster (another fixture built its own client) is the same cluster
    assert unique_sources(cluster, [FakeCluster("cluster1"), FakeCluster("cluster2")])[0] is cluster
    assert [c.name for c in unique_sources(cluster, [FakeCluster("cluster2")])] == ["cluster1", "cluster2"]
    dump = ArtifactDumper(tmp_path).dump(TEST_ID, [cluster, cluster])
    assert "clusters: cluster1\n" in (dump.path / "README.txt").read_text()
    assert cluster.asked.count(f"find meshproof.io/test-id={TEST_ID}") == 1


def test_the_cap_is_shared_by_every_dumper_of_the_run(tmp_path: Path):
    worker_a, worker_b = ArtifactDumper(tmp_path, max_dumps=3), ArtifactDumper(tmp_path, max_dumps=3)
    claims = [worker_a.claim_slot(), worker_b.claim_slot(), worker_a.claim_slot(), worker_b.claim_slot()]
    assert claims == [True, True, True, False]
    assert ArtifactDumper(tmp_path, max_dumps=0).claim_slot() is False


def test_clusters_are_found_in_single_mapping_and_list_fixture_values():
    east, west = FakeCluster("east"), FakeCluster("west")
    assert sources_from(east) == [east]
    assert sources_from({"east": east, "west": west}) == [east, west]
    assert sources_from([east, "not a cluster"]) == [east]
    assert sources_from(None) == [] and sources_from("kind-east") == []


# --- the pytest plugin, through pytester ------------------------------------------------------------------

INNER_CONFTEST = textwrap.dedent(
    """
    import pytest
    import meshproof.commands.doctor as doctor

    _real_preflight = doctor.preflight
    doctor.preflight = lambda cfg: []  # this inner run tests artifacts, not prerequisites

    pytest_plugins = ["fixtures.run", "fixtures.artifacts"]

    def pytest_unconfigure(config):
        doctor.preflight = _real_preflight

    class TinyCluster:
        name = "kind-meshproof"

        def __init__(self, broken=False):
            self.broken = broken

        def find_labelled(self, label_selector):
            if self.broken:
                raise RuntimeError("apiserver went away")
            key, _, value = label_selector.partition("=")
            return [{"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "made-by-test", "namespace": "mp-a", "labels": {key: value}},
                     "data": {"token": "inner-secret-token-1"}}]

        def pods(self, namespace, label_selector=None):
            return []

        def events(self, namespace, field_selector=None):
            return []

        def logs(self, pod, namespace, container=None, previous=False, since_seconds=None, tail_lines=None):
            return ""

    # as in fixtures/clusters.py: `cluster` is the primary of `clusters`, so a test has both
    @pytest.fixture
    def clusters(request, test_id):
        return {"kind-meshproof": TinyCluster(broken="broken" in request.node.name)}

    @pytest.fixture
    def cluster(clusters):
        return clusters["kind-meshproof"]
    """
)

INNER_TESTS = textwrap.dedent(
    """
    def test_fails_with_cluster(cluster, artifact_namespaces):
        artifact_namespaces.add("mp-extra")
        assert 1 == 2, "mesh said no"

    def test_passes(cluster):
        pass

    def test_fails_without_cluster():
        assert False

    def test_fails_broken(cluster):
        assert False, "original failure"
    """
)


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


def test_a_failed_test_with_a_cluster_gets_a_dump_and_one_line_pointing_at_it(inner: pytest.Pytester):
    results = inner.path / "results"
    outcome = inner.runpytest("-p", "no:cacheprovider", "--results-dir", str(results))
    outcome.assert_outcomes(passed=1, failed=3)
    dumps = sorted(p.name for p in (results / "artifacts").iterdir() if p.is_dir())
    assert len(dumps) == 2 and all(
        d.startswith(("test-fails-with-cluster-", "test-fails-broken-")) for d in dumps
    )
    with_cluster = next(results.glob("artifacts/test-fails-with-cluster-*"))
    dumped = (with_cluster / "kind-meshproof/objects/mp-a/ConfigMap.made-by-test.yaml").read_text()
    assert "inner-secret-token-1" not in dumped and "token: <redacted>" in dumped
    assert (with_cluster / "kind-meshproof/pods/mp-extra/_summary.txt").exists()  # registered namespace
    assert "clusters: kind-meshproof\n" in (with_cluster / "README.txt").read_text()  # once, not twice

    lines = outcome.outlines
    pointers = [line for line in lines if line.startswith("artifacts: ")]
    assert len(pointers) == 2  # one per failed test that had a cluster; none for the test without one
    assert pointers[0] == f"artifacts: {with_cluster}"
    assert pointers[1].startswith(f"artifacts: {results / 'artifacts' / 'test-fails-broken-'}")
    assert pointers[1].endswith("(1 part not collected, see README.txt)")
    assert f"meshproof: artifacts of 2 failed test(s) under {results / 'artifacts'}" in lines
    assert "AssertionError: original failure" in outcome.stdout.str()  # the dump problem hides nothing

    junit = (results / "junit.xml").read_text()
    assert f'name="meshproof_artifacts" value="artifacts: {with_cluster}"' in junit


def test_the_cap_stops_dumps_and_says_so(inner: pytest.Pytester):
    results = inner.path / "results"
    outcome = inner.runpytest(
        "-p", "no:cacheprovider", "--results-dir", str(results), "--max-artifact-dumps=1"
    )
    outcome.assert_outcomes(passed=1, failed=3)
    assert len([p for p in (results / "artifacts").iterdir() if p.is_dir()]) == 1
    outcome.stdout.fnmatch_lines(["artifacts not collected: --max-artifact-dumps=1 reached for this run"])


def test_a_dump_that_cannot_be_written_never_changes_the_test_outcome(inner: pytest.Pytester):
    results = inner.path / "results"
    # planted once the run has prepared its fresh results dir (a non-empty one it would refuse)
    inner.makeconftest(
        INNER_CONFTEST
        + "\ndef pytest_sessionstart(session):\n"
        + f"    open({str(results / 'artifacts')!r}, 'w').write('a file where the folder should be')\n"
    )
    outcome = inner.runpytest("-p", "no:cacheprovider", "--results-dir", str(results))
    outcome.assert_outcomes(passed=1, failed=3)
    outcome.stdout.fnmatch_lines(
        ["artifacts not collected: FileExistsError*", "*mesh said no*"], consecutive=False
    )
