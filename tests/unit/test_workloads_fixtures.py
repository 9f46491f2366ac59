"""The workloads/traffic pytest fixtures wired together in a real pytest run (pytester) on a fake cluster.

Proves the fixture lifecycle: the workloads are deployed once for the session and shared by its tests;
each test's policies carry its test id and are removed when it ends, also when it fails; the namespaces go
at session end, or stay with --keep-on-failure after a failure. What the fake cluster cannot prove: that a
real API server, scheduler and mesh do any of this (only a cluster run shows that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFTEST = """
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from meshproof.config import RunConfig
from meshproof.wait import Timeouts

pytest_plugins = ["fixtures.workloads", "fixtures.traffic"]
LOG = Path(__file__).parent / "calls.jsonl"


class FakeCluster:
    context = "kind-meshproof"
    namespaces = {}

    def _log(self, *entry):
        with LOG.open("a") as f:
            f.write(json.dumps(entry) + "\\n")

    def apply(self, docs, *, test_id=None):
        parsed = [d for d in yaml.safe_load_all(docs) if d] if isinstance(docs, str) else list(docs)
        for d in parsed:
            if d["kind"] == "Namespace":
                labels = d["metadata"]["labels"]
                self.namespaces[d["metadata"]["name"]] = labels["meshproof.io/workload-class"]
            self._log("apply", d["kind"], d["metadata"]["name"], test_id)
        return parsed

    def delete(self, api_version, kind, name, namespace=None, wait=False):
        self._log("delete", kind, name)
        return True

    def get(self, api_version, kind, name, namespace=None):
        return None

    def wait_rollout(self, kind, name, namespace, *, timeout):
        return {}

    def wait_for_condition(self, api_version, kind, name, namespace, condition, *, status="True", timeout):
        return {}

    def pods(self, namespace, label_selector=None):
        captured = self.namespaces[namespace] != "out-of-mesh"
        annotations = {"ambient.istio.io/redirection": "enabled"} if captured else {}
        return [{"metadata": {"name": "p", "annotations": annotations}, "spec": {"containers": []}}]


@pytest.fixture(scope="session")
def run_config(pytestconfig, tmp_path_factory):
    keep = pytestconfig.getoption("--keep-on-failure-test")
    results = tmp_path_factory.mktemp("results")
    return RunConfig(mode="ambient", run_id="r1", results_dir=results, keep_on_failure=keep)


@pytest.fixture(scope="session")
def timeouts(run_config):
    return Timeouts.for_config(run_config)


@pytest.fixture(scope="session")
def cluster():
    return FakeCluster()


@pytest.fixture(scope="session")
def mesh():
    return SimpleNamespace(revision="default", ztunnel_namespace="istio-system", trust_domain="cluster.local")


@pytest.fixture
def test_id(request):
    return request.node.name.replace("_", "-")


@pytest.fixture
def artifact_namespaces():
    return set()


def pytest_addoption(parser):
    parser.addoption("--keep-on-failure-test", action="store_true")
"""

TESTS = """
from meshproof.policies import Rule, authorization_policy
from meshproof.workloads import WorkloadClass


def test_first(workloads, policies, traffic, artifact_namespaces):
    server = workloads.server(WorkloadClass.AMBIENT)
    policies.apply(authorization_policy("deny-first", server, "DENY", [Rule()]))
    assert set(workloads.namespaces) <= artifact_namespaces
    assert "istio-system" in artifact_namespaces
    raise AssertionError("this test fails after applying its policy")


def test_second(workloads, policies):
    server = workloads.server(WorkloadClass.WAYPOINT)
    policies.apply(authorization_policy("allow-second", server, "ALLOW", [Rule()]))
"""


def run(pytester: pytest.Pytester, *args: str) -> list[list[object]]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_lifecycle=TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1, failed=1)
    log = Path(pytester.path / "calls.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_workloads_once_policies_per_test_and_namespaces_removed_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    calls = run(pytester)
    namespace_applies = [c for c in calls if c[:2] == ["apply", "Namespace"]]
    assert len(namespace_applies) == 3  # ambient, waypoint, out-of-mesh: once for both tests
    assert all(c[3] is None for c in namespace_applies)  # run-scoped objects carry no test id
    policy_applies = [c for c in calls if c[:2] == ["apply", "AuthorizationPolicy"]]
    assert policy_applies == [
        ["apply", "AuthorizationPolicy", "deny-first", "test-first"],
        ["apply", "AuthorizationPolicy", "allow-second", "test-second"],
    ]
    deletes = [c for c in calls if c[0] == "delete"]
    assert deletes[:2] == [
        ["delete", "AuthorizationPolicy", "deny-first"],
        ["delete", "AuthorizationPolicy", "allow-second"],
    ]
    assert [c[1] for c in deletes[2:]] == ["Namespace"] * 3
    # the failing test's policy was gone before the next test applied its own
    assert calls.index(["delete", "AuthorizationPolicy", "deny-first"]) < calls.index(policy_applies[1])


def test_keep_on_failure_leaves_the_namespaces(pytester: pytest.Pytester) -> None:
    calls = run(pytester, "--keep-on-failure-test")
    assert not [c for c in calls if c[:2] == ["delete", "Namespace"]]
    assert ["delete", "AuthorizationPolicy", "deny-first"] in calls  # policies still go with their test


OWN_SERVER_TESTS = """
import pytest

from meshproof.workloads import SharedStateBusy, WorkloadClass, exclusive


def test_own_server_holds_its_name_run_wide(own_server, workloads, workload_state_dir):
    key = f"server/{workloads.namespace(WorkloadClass.AMBIENT)}/restart-me"
    with own_server("restart-me", workload_class=WorkloadClass.AMBIENT) as server:
        assert server.name == "restart-me"
        other_worker = exclusive(workload_state_dir, key, timeout=0.1)
        with pytest.raises(SharedStateBusy, match="restart-me"), other_worker:
            pass  # another xdist worker's test with the same server name waits for this one
    with exclusive(workload_state_dir, key, timeout=0.1):
        pass  # released, with the server deleted
"""


def test_own_server_takes_turns_on_a_fixed_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_own=OWN_SERVER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    calls = [json.loads(line) for line in Path(pytester.path / "calls.jsonl").read_text().splitlines()]
    assert ["delete", "Deployment", "restart-me"] in calls
