"""fortio wrapper: command lines, parsing of real fortio JSON (captured from fortio 1.68.2 against a local
echo server, output-formats §1.1), stderr handling (§1.2) and the validity rules (perf-anchors §7.5)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from meshproof.bench import fortio as fortio_mod
from meshproof.bench.fortio import (
    FortioFailed,
    FortioLoad,
    FortioMissing,
    abort_reason,
    falling_behind_percent,
    parse_fortio_json,
    run_fortio_in_pod,
    to_run_record,
)
from meshproof.bench.validity import ValidityLimits

# `fortio load -qps 200 -c 2 -t 2s -uniform -nocatchup -r 0.00001 -p 50,90,99,99.9 -json -` (fortio 1.68.2)
REAL_RESULT = json.loads(
    r"""{
 "RunType": "HTTP",
 "Labels": "127.0.0.1:18080/echo , vm",
 "StartTime": "2026-11-26T06:32:19.490202717Z",
 "RequestedQPS": "200",
 "RequestedDuration": "2s",
 "ActualQPS": 199.36728539130743,
 "ActualDuration": 2006347226,
 "NumThreads": 2,
 "Version": "1.68.2",
 "DurationHistogram": {
  "Count": 400,
  "Min": 0.000137698,
  "Max": 0.000576992,
  "Sum": 0.098274368,
  "Avg": 0.00024568592,
  "StdDev": 4.578916246666454e-05,
  "Data": [
   {
    "Start": 0.000137698,
    "End": 0.00014000000000000001,
    "Percent": 0.25,
    "Count": 1
   },
   {
    "Start": 0.00014000000000000001,
    "End": 0.00016,
    "Percent": 1.5,
    "Count": 5
   },
   {
    "Start": 0.00016,
    "End": 0.00018,
    "Percent": 6.75,
    "Count": 21
   },
   {
    "Start": 0.00018,
    "End": 0.0002,
    "Percent": 13.25,
    "Count": 26
   },
   {
    "Start": 0.0002,
    "End": 0.00025,
    "Percent": 56,
    "Count": 171
   },
   {
    "Start": 0.00025,
    "End": 0.00030000000000000003,
    "Percent": 89,
    "Count": 132
   },
   {
    "Start": 0.00030000000000000003,
    "End": 0.00035000000000000005,
    "Percent": 99.25,
    "Count": 41
   },
   {
    "Start": 0.00035000000000000005,
    "End": 0.0004,
    "Percent": 99.75,
    "Count": 2
   },
   {
    "Start": 0.0005,
    "End": 0.000576992,
    "Percent": 100,
    "Count": 1
   }
  ],
  "Percentiles": [
   {
    "Percentile": 50,
    "Value": 0.0002429824561403509
   },
   {
    "Percentile": 90,
    "Value": 0.00030487804878048786
   },
   {
    "Percentile": 99,
    "Value": 0.0003487804878048781
   },
   {
    "Percentile": 99.9,
    "Value": 0.0005461952000000018
   }
  ]
 },
 "ErrorsDurationHistogram": {
  "Count": 0,
  "Min": 0,
  "Max": 0,
  "Sum": 0,
  "Avg": 0,
  "StdDev": 0,
  "Data": null
 },
 "Exactly": 0,
 "Jitter": false,
 "Uniform": true,
 "NoCatchUp": true,
 "RunID": 0,
 "AccessLoggerInfo": "",
 "ID": "2026-11-26-063219_127_0_0_1_18080_echo_vm",
 "RetCodes": {
  "200": 400
 },
 "IPCountMap": {
  "127.0.0.1:18080": 2
 },
 "Insecure": false,
 "MTLS": false,
 "CACert": "",
 "Cert": "",
 "Key": "",
 "UnixDomainSocket": "",
 "URL": "http://127.0.0.1:18080/echo",
 "NumConnections": 1,
 "Compression": false,
 "DisableFastClient": false,
 "HTTP10": false,
 "H2": false,
 "DisableKeepAlive": false,
 "AllowHalfClose": false,
 "FollowRedirects": false,
 "Resolve": "",
 "HTTPReqTimeOut": 3000000000,
 "UserCredentials": "",
 "ContentType": "",
 "Payload": "",
 "MethodOverride": "",
 "LogErrors": true,
 "SequentialWarmup": false,
 "ConnReuseRange": [
  0,
  0
 ],
 "NoResolveEachConn": false,
 "Offset": 0,
 "Resolution": 1e-05,
 "Sizes": {
  "Count": 400,
  "Min": 75,
  "Max": 75,
  "Sum": 30000,
  "Avg": 75,
  "StdDev": 0,
  "Data": [
   {
    "Start": 75,
    "End": 75,
    "Percent": 100,
    "Count": 400
   }
  ]
 },
 "HeaderSizes": {
  "Count": 400,
  "Min": 75,
  "Max": 75,
  "Sum": 30000,
  "Avg": 75,
  "StdDev": 0,
  "Data": [
   {
    "Start": 75,
    "End": 75,
    "Percent": 100,
    "Count": 400
   }
  ]
 },
 "Sockets": [
  1,
  1
 ],
 "SocketCount": 2,
 "ConnectionStats": {
  "Count": 2,
  "Min": 0.00033085,
  "Max": 0.000527719,
  "Sum": 0.000858569,
  "Avg": 0.0004292845,
  "StdDev": 9.843449999999989e-05,
  "Data": [
   {
    "Start": 0.00033085,
    "End": 0.00035000000000000005,
    "Percent": 50,
    "Count": 1
   },
   {
    "Start": 0.0005,
    "End": 0.000527719,
    "Percent": 100,
    "Count": 1
   }
  ],
  "Percentiles": [
   {
    "Percentile": 50,
    "Value": 0.00033085
   },
   {
    "Percentile": 90,
    "Value": 0.0005221752
   },
   {
    "Percentile": 99,
    "Value": 0.0005271646199999999
   },
   {
    "Percentile": 99.9,
    "Value": 0.000527663562
   }
  ]
 },
 "AbortOn": 0
}"""
)

STDERR_FALLING_BEHIND = "\n".join(
    [
        "Fortio 1.68.2 running at 200 queries per second, 2->2 procs, for 2s: http://127.0.0.1:18080/echo",
        '{"ts":1795674750.225262,"level":"warn","r":10,"file":"periodic.go","line":782,'
        '"msg":"T001 warning only did 97 out of 200 calls before reaching 2s"}',
        "WARNING 100.00% of sleep were falling behind",
        "",
    ]
)
STDERR_ABORT = "\n".join(
    [
        '{"ts":1795674746.016683,"level":"err","r":8,"file":"http_client.go","line":954,'
        '"msg":"Unable to connect",'
        '"err":"dial tcp 127.0.0.1:18081: connect: connection refused","thread":0,"run":0}',
        "Aborting because of error -1 for http://127.0.0.1:18081/echo (0 bytes)",
        "",
    ]
)


def variant(**changes: Any) -> str:
    data = copy.deepcopy(REAL_RESULT)
    data.update(changes)
    return json.dumps(data)


def test_command_line_follows_the_recommended_method() -> None:
    load = FortioLoad(
        url="http://server:8080/echo",
        qps=1000,
        connections=16,
        duration_s=240,
        payload_size=1024,
        labels="sidecar_1000_16_1",
    )
    argv = load.args()
    assert argv[:2] == ["fortio", "load"] and argv[-1] == "http://server:8080/echo"
    joined = " ".join(argv)
    for part in (
        "-qps 1000",
        "-c 16",
        "-t 240s",
        "-uniform=true",
        "-nocatchup=true",
        "-r 1e-05",
        "-p 50,90,99,99.9",
        "-json -",
        "-payload-size 1024",
        "-labels sidecar_1000_16_1",
    ):
        assert part in joined, part


def test_max_throughput_is_qps_zero() -> None:
    argv = FortioLoad(url="http://x/", qps=None, connections=4, duration_s=5).args()
    assert argv[argv.index("-qps") + 1] == "0"
    assert "-payload-size" not in argv


def test_parse_real_result() -> None:
    result = parse_fortio_json(json.dumps(REAL_RESULT))
    assert result.requested_qps == 200 and result.actual_qps == pytest.approx(199.367, abs=1e-3)
    assert result.actual_duration_s == pytest.approx(2.006347226)
    assert result.count == 400 and result.errors == 0 and result.socket_count == 2
    assert result.version == "1.68.2" and result.start_time.year == 2026
    assert result.percentiles_ms["p50"] == pytest.approx(0.24298, abs=1e-4)
    # the histogram reproduces fortio's own interpolated percentiles
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        assert result.histogram.percentile(q) == pytest.approx(result.percentiles_ms[key], rel=1e-9)
    assert result.histogram.count == 400
    assert result.min_ms < result.percentiles_ms["p50"] < result.percentiles_ms["p99"] <= result.max_ms


def test_max_qps_result_has_no_requested_rate() -> None:
    assert parse_fortio_json(variant(RequestedQPS="max")).requested_qps is None


def test_non_ok_codes_count_as_errors_and_418_as_ok() -> None:
    result = parse_fortio_json(variant(RetCodes={"200": 380, "418": 5, "503": 10, "-1": 5}))
    assert result.errors == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no JSON"),
        ("[1, 2]", "not an object"),
        (json.dumps({"error": True, "message": "boom"}), "boom"),
        (json.dumps({"RunType": "HTTP"}), "lacks an expected field"),
    ],
)
def test_bad_json_is_a_clear_failure(text: str, message: str) -> None:
    with pytest.raises(FortioFailed, match=message):
        parse_fortio_json(text)


def test_stderr_lines() -> None:
    assert falling_behind_percent(STDERR_FALLING_BEHIND) == 100.0
    assert falling_behind_percent("Ended after 2s : 400 calls") is None
    assert abort_reason(STDERR_ABORT).startswith("Aborting because of error -1")
    assert "connection refused" in abort_reason(STDERR_ABORT.splitlines()[0])


def test_valid_run_record() -> None:
    result = parse_fortio_json(json.dumps(REAL_RESULT))
    load = FortioLoad(url="http://127.0.0.1:18080/echo", qps=200, connections=2, duration_s=2)
    record = to_run_record(
        result, load=load, run_id="r1", arm="local", repetition=1, order=0, limits=ValidityLimits()
    )
    assert record.valid and not record.invalid_reasons and not record.warnings
    assert record.requests == 400 and record.tool == "fortio" and record.tool_version == "1.68.2"


def test_run_below_99_percent_of_target_is_invalid() -> None:
    result = parse_fortio_json(variant(ActualQPS=66.44))
    load = FortioLoad(url="http://x/echo", qps=200, connections=2, duration_s=2)
    record = to_run_record(
        result, load=load, run_id="r1", arm="local", repetition=1, order=0, limits=ValidityLimits()
    )
    assert not record.valid
    assert "33.2% of the requested 200" in record.invalid_reasons[0]


def test_error_ratio_above_the_limit_is_invalid_and_reuse_is_checked() -> None:
    result = parse_fortio_json(variant(RetCodes={"200": 398, "503": 2}, SocketCount=9))
    load = FortioLoad(url="http://x/echo", qps=200, connections=2, duration_s=2)
    strict = to_run_record(
        result, load=load, run_id="r", arm="a", repetition=1, order=0, limits=ValidityLimits()
    )
    assert not strict.valid and "2 of 400 requests failed" in strict.invalid_reasons[0]
    assert "not reused" in strict.warnings[0]
    lenient = to_run_record(
        result,
        load=load,
        run_id="r",
        arm="a",
        repetition=1,
        order=0,
        limits=ValidityLimits(max_error_ratio=0.01),
    )
    assert lenient.valid


def test_falling_behind_marks_the_run_invalid() -> None:
    out = fortio_mod._output(0, json.dumps(REAL_RESULT), STDERR_FALLING_BEHIND)
    load = FortioLoad(url="http://x/echo", qps=200, connections=2, duration_s=2, nocatchup=False)
    record = to_run_record(
        out.result, load=load, run_id="r", arm="a", repetition=1, order=0, limits=ValidityLimits()
    )
    assert not record.valid and "falling behind" in record.invalid_reasons[0]


def test_in_pod_run_uses_exec_and_fails_clearly_without_json() -> None:
    """Fake exec only: proves the argv and the error path, not that a real pod runs fortio."""
    calls: list[dict[str, Any]] = []

    class FakeCluster:
        def __init__(self, stdout: str, stderr: str, code: int) -> None:
            self.reply = SimpleNamespace(stdout=stdout, stderr=stderr, exit_code=code)

        def exec(
            self,
            pod: str,
            namespace: str,
            command: list[str],
            container: str | None = None,
            timeout: float = 60.0,
            stdin: str | None = None,
        ) -> Any:
            calls.append(
                {"pod": pod, "ns": namespace, "cmd": command, "container": container, "timeout": timeout}
            )
            return self.reply

    load = FortioLoad(url="http://fortio-server:8080/echo", qps=1000, connections=16, duration_s=30)
    out = run_fortio_in_pod(
        FakeCluster(json.dumps(REAL_RESULT), "", 0), pod="c", namespace="ns", container="fortio", load=load
    )
    assert out.result.count == 400
    assert calls[0]["cmd"][:2] == ["fortio", "load"] and calls[0]["container"] == "fortio"
    assert calls[0]["timeout"] > 30
    with pytest.raises(FortioFailed, match="exited 1: Aborting because of error -1"):
        run_fortio_in_pod(
            FakeCluster("", STDERR_ABORT, 1), pod="c", namespace="ns", container="fortio", load=load
        )


def test_missing_fortio_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from meshproof import tools

    monkeypatch.delenv("MESHPROOF_FORTIO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("MESHPROOF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tools, "checkout_bin_dir", lambda: tmp_path / "checkout-bin")
    with pytest.raises(FortioMissing) as info:
        fortio_mod.find_fortio()
    message = str(info.value)
    assert "go install fortio.org/fortio@v" in message and "\n" not in message
