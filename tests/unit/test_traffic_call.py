"""`call` and `Traffic.expect` against a fake cluster that records exec calls and replays client output.

What this cannot prove: that the real API server's exec returns these bytes, that the pods resolve the
service names, or that curl/fortio inside the images behave as locally (the local-real tests run the same
argv against real curl and fortio on loopback; only a cluster run shows the pods' side).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import meshproof.traffic as traffic_module
from meshproof.checks import responses
from meshproof.traffic import CallError, Traffic, call, exec_budget
from meshproof.wait import WaitTimeout, eventually
from meshproof.workloads import APP_CONTAINER, CURL_CONTAINER, Workload, WorkloadClass, WorkloadNotReady

CLIENT = Workload(WorkloadClass.AMBIENT, "mp-run-ambient", "client")
SERVER = Workload(WorkloadClass.AMBIENT, "mp-run-ambient", "server")


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int


def pod(name: str, *, ready: bool = True, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": CLIENT.namespace, "labels": {"app": "client"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T06:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "kind-worker"},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@dataclass
class FakeCluster:
    """Lists pods and answers exec with a function of the argv (the "client" output)."""

    answer: Callable[[list[str]], ExecResult]
    pod_list: list[dict[str, Any]] = field(
        default_factory=lambda: [pod("client-b", ready=False), pod("client-a")]
    )
    execs: list[dict[str, Any]] = field(default_factory=list)

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        assert label_selector == "app=client"
        return self.pod_list

    def exec(
        self,
        pod: str,
        namespace: str,
        command: list[str],
        container: str | None = None,
        timeout: float = 60.0,
        stdin: str | None = None,
    ) -> ExecResult:
        self.execs.append(
            {
                "pod": pod,
                "namespace": namespace,
                "command": command,
                "container": container,
                "timeout": timeout,
            }
        )
        return self.answer(command)


def curl_records(argv: list[str], *codes: tuple[int, int]) -> str:
    """What curl prints for `argv`: one -w record per (http_code, exitcode), using argv's own marker."""
    fmt = argv[argv.index("--write-out") + 1]
    out = []
    for http_code, exitcode in codes:
        summary = json.dumps(
            {"http_code": http_code, "exitcode": exitcode, "errormsg": None, "time_total": 0.01}
        )
        body = "ok-body" if http_code else ""
        out.append(
            body + fmt.replace("%{json}", summary).replace("%{header_json}", "{\n}").replace("\\n", "\n")
        )
    return "".join(out)


def test_http_call_runs_curl_in_a_ready_client_pod_and_parses_each_request() -> None:
    cluster = FakeCluster(lambda argv: ExecResult(curl_records(argv, (200, 0), (0, 56)), "", 0))
    got = call(cluster, CLIENT, SERVER, 8080, "http", "/debug", count=2, request_timeout=3)
    (execed,) = cluster.execs
    assert execed["pod"] == "client-a"  # the not-ready pod is never used
    assert execed["namespace"] == CLIENT.namespace and execed["container"] == CURL_CONTAINER
    assert execed["command"][-1] == f"http://{SERVER.host}:8080/debug"
    assert execed["timeout"] == exec_budget(2, 3, "http", True)
    assert [r.status for r in got] == [200, None]
    assert got[1].exit_code == 56 and got[1].target == f"http://{SERVER.host}:8080/debug"


def test_tcp_call_runs_fortio_in_the_app_container() -> None:
    def answer(argv: list[str]) -> ExecResult:
        return ExecResult(json.dumps({"RetCodes": {"OK": 1}}), "", 0)

    cluster = FakeCluster(answer)
    (got,) = call(cluster, CLIENT, "server.other.svc.cluster.local", 8078, "tcp")
    (execed,) = cluster.execs
    assert execed["container"] == APP_CONTAINER
    assert execed["command"][:2] == ["fortio", "load"]
    assert execed["command"][-1] == "tcp://server.other.svc.cluster.local:8078"
    payload = execed["command"][execed["command"].index("-payload") + 1]
    assert got.body == payload and got.scheme == "tcp"


def test_fewer_results_than_requests_is_a_call_error_naming_the_client_output() -> None:
    cluster = FakeCluster(lambda argv: ExecResult("", "sh: curl: not found", 127))
    with pytest.raises(CallError, match=r"expected 1 result.*exit 127: sh: curl: not found"):
        call(cluster, CLIENT, SERVER, 8080)


def test_no_ready_pod_is_reported_by_name() -> None:
    cluster = FakeCluster(lambda argv: ExecResult("", "", 0), pod_list=[pod("client-a", deleting=True)])
    with pytest.raises(WorkloadNotReady, match="no ready pod for ambient:mp-run-ambient/client"):
        call(cluster, CLIENT, SERVER, 8080)


def test_unknown_scheme_and_relative_path_are_refused() -> None:
    cluster = FakeCluster(lambda argv: ExecResult("", "", 0))
    with pytest.raises(ValueError, match="scheme"):
        call(cluster, CLIENT, SERVER, 8080, "grpc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path"):
        call(cluster, CLIENT, SERVER, 8080, "http", "debug")


def test_exec_budget_is_per_request_times_sequential_requests_plus_overhead() -> None:
    assert exec_budget(3, 5, "http", True) == 3 * 5 + traffic_module.EXEC_OVERHEAD_S
    assert exec_budget(3, 5, "tcp", True) == 5 + traffic_module.EXEC_OVERHEAD_S  # parallel connections
    assert exec_budget(3, 5, "tcp", False) == 15 + traffic_module.EXEC_OVERHEAD_S


@pytest.fixture
def instant_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Run Traffic's waits on a fake clock so convergence is tested without sleeping."""
    now = [0.0]
    slept: list[float] = []

    def fake_eventually(fn: Callable[[], Any], **kwargs: Any) -> Any:
        def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        return eventually(fn, clock=lambda: now[0], sleep=sleep, **kwargs)

    monkeypatch.setattr(traffic_module, "eventually", fake_eventually)
    return slept


def test_expect_needs_three_passes_in_a_row_and_records_what_it_saw(instant_waits: list[float]) -> None:
    # deny, ok, ok, deny, ok, ok, ok: the streak resets on the flap and completes at the 7th call
    codes = iter([403, 200, 200, 403, 200, 200, 200, 200])
    cluster = FakeCluster(lambda argv: ExecResult(curl_records(argv, (next(codes), 0)), "", 0))
    recorded: list[tuple[str, object]] = []
    probe = Traffic(
        cluster, converge_timeout=60, request_timeout=2, record=lambda k, v: recorded.append((k, v))
    )

    got = probe.expect(CLIENT, SERVER, 8080, responses.ok(), description="the policy admits the client")

    assert len(cluster.execs) == 7
    assert [r.status for r in got] == [200]
    assert recorded == [("traffic.1", "the policy admits the client: ok held 3x in a row (200 x1)")]


def test_expect_times_out_with_the_last_verdict(instant_waits: list[float]) -> None:
    cluster = FakeCluster(lambda argv: ExecResult(curl_records(argv, (200, 0)), "", 0))
    probe = Traffic(cluster, converge_timeout=10, request_timeout=2)
    with pytest.raises(WaitTimeout, match=r"the policy denies the client.*denied_l7.*expected HTTP 403"):
        probe.expect(CLIENT, SERVER, 8080, responses.denied_l7(), description="the policy denies the client")
    assert sum(instant_waits) <= 10


def test_expect_retries_harness_errors_like_failed_attempts(instant_waits: list[float]) -> None:
    outputs = iter([ExecResult("", "error: unable to upgrade connection", 1)] + [ExecResult("", "", 0)] * 3)

    def answer(argv: list[str]) -> ExecResult:
        result = next(outputs)
        return result if result.exit_code else ExecResult(curl_records(argv, (200, 0)), "", 0)

    cluster = FakeCluster(answer)
    probe = Traffic(cluster, converge_timeout=60, request_timeout=2)
    got = probe.expect(CLIENT, SERVER, 8080, responses.ok(), description="recovers from a failed exec")
    assert len(cluster.execs) == 4 and got[0].status == 200
