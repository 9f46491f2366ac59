"""The busy-wait delay server on loopback, `bench local` with two arms, and `bench calibrate` end to end
with real fortio (tiny settings: a few seconds in all; the real calibration is a measured result in
docs/benchmark-harness.md, not a timed test)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from meshproof.bench.delayserver import serving_in_process
from meshproof.bench.fortio import FortioMissing, find_fortio
from meshproof.bench.model import load_results
from meshproof.commands import bench as bench_cmd

pytestmark = pytest.mark.local_real


def _exchange(sock: socket.socket, request: bytes, responses: int = 1) -> tuple[bytes, float]:
    start = time.perf_counter()
    sock.sendall(request)
    data = b""
    while data.count(b"HTTP/1.1 200 OK") < responses or not data.endswith(b"ok\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data, time.perf_counter() - start


def test_delay_server_adds_its_delay_keeps_alive_and_honours_close() -> None:
    get = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    # its own process: in this one, the server's busy-wait and the client would share one interpreter lock
    with serving_in_process([0.0, 0.5]) as (fast, slow):
        fast_port, slow_port = (int(u.rsplit(":", 1)[1]) for u in (fast, slow))
        with (
            socket.create_connection(("127.0.0.1", fast_port), timeout=2) as f,
            socket.create_connection(("127.0.0.1", slow_port), timeout=2) as s,
        ):
            fast_times = [_exchange(f, get)[1] for _ in range(40)]  # keep-alive: one connection
            slow_times = [_exchange(s, get)[1] for _ in range(40)]
        # the fastest quarter: what the server adds, without this (shared, busy) machine's scheduling spikes
        added_ms = (sorted(slow_times)[10] - sorted(fast_times)[10]) * 1000
        assert 0.45 <= added_ms <= 0.8, f"added {added_ms:.3f} ms for a 0.5 ms delay"

        post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        with socket.create_connection(("127.0.0.1", fast_port), timeout=2) as f:
            data, _ = _exchange(f, post + get, responses=2)  # a body, then a pipelined request
            assert data.count(b"HTTP/1.1 200 OK") == 2
            data, _ = _exchange(f, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 200 OK") and f.recv(10) == b""  # closed after the reply


def _fortio_or_fail() -> None:
    try:
        find_fortio()
    except FortioMissing as exc:
        pytest.fail(str(exc))


def test_bench_local_alternates_two_arms_into_one_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fortio_or_fail()
    with serving_in_process([0.0, 1.0]) as (fast, slow):
        argv = ["local", "--url", f"base={fast}/echo", "--url", f"slow={slow}/echo", "--tool", "fortio"]
        argv += [
            "--qps",
            "100",
            "--connections",
            "2",
            "--duration",
            "0.6",
            "--warmup",
            "0.2",
            "--repetitions",
            "2",
        ]
        argv += ["--min-qps-ratio", "0.9", "--output", str(tmp_path)]
        assert bench_cmd.main(argv) == 0
    results = load_results(tmp_path)
    assert results.plan["reference_arm"] == "base" and len(results.runs) == 4
    for rep in (1, 2):
        orders = sorted((r.order, r.arm) for r in results.runs if r.repetition == rep)
        assert {arm for _, arm in orders} == {"base", "slow"}
        assert orders[1][0] == orders[0][0] + 1  # the two arms of a repetition run back to back
    markdown = (tmp_path / "benchmark.md").read_text(encoding="utf-8")
    assert "## Difference to base" in markdown and "### slow fortio qps=100 c=2" in markdown
    assert "slow - base: p50 +" in capsys.readouterr().out  # the console says the 1 ms at once


def test_calibrate_end_to_end_with_tiny_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fortio_or_fail()
    argv = ["calibrate", "--qps", "200", "--connections", "2", "--duration", "0.5", "--warmup", "0"]
    argv += ["--repetitions", "2", "--group-size", "2", "--shifts-ms", "0,0.5", "--min-qps-ratio", "0.9"]
    assert bench_cmd.main([*argv, "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| planted shift (ms) |" in out and "false-positive rate" in out
    doc = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    rows = {r["shift_ms"]: r for r in doc["rows"]}
    # the server plants what it is asked: 0.5 ms measured at p50 to within 0.15 ms on a busy machine
    assert rows[0.5]["measured_ms"]["p50"] == pytest.approx(0.5, abs=0.15)
    assert abs(rows[0.0]["measured_ms"]["p50"]) < 0.15
    assert (tmp_path / "benchmark.json").is_file() and (tmp_path / "benchmark.html").is_file()
