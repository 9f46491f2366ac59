"""Locust runner pieces on realistic inputs: the command line, per-request logs (the locustfile's format),
the measured window after warm-up, Locust's `--json-file` entries (output-formats §7.1) and the master's
log as the in-cluster runner reads it. The locustfile itself runs for real in tests/local_real."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from meshproof.bench.histogram import histogram_from_rounded, rounding_step
from meshproof.bench.locust import (
    JSON_BEGIN,
    JSON_END,
    LocustFailed,
    LocustLoad,
    local_command,
    master_output_to_record,
    master_shell_command,
    measured_window,
    parse_locust_json,
    parse_master_log,
    read_request_logs,
    samples_to_record,
)
from meshproof.bench.model import Placement
from meshproof.bench.validity import ValidityLimits

T0 = 1_795_675_116.0
ENTRY = {
    "name": "/echo",
    "method": "GET",
    "last_request_timestamp": T0 + 9.99,
    "start_time": T0,
    "num_requests": 1000,
    "num_none_requests": 0,
    "num_failures": 0,
    "total_response_time": 812.5,
    "max_response_time": 6.4,
    "min_response_time": 0.41,
    "total_content_length": 3000,
    "response_times": {"0.45": 300, "0.8": 600, "1.2": 90, "6.4": 10},
    "num_reqs_per_sec": {str(int(T0) + i): 100 for i in range(10)},
    "num_fail_per_sec": {},
}


def write_log(path: Path, rows: list[tuple[float, float, int, int]]) -> None:
    lines = ["start_time_s,response_time_ms,status,ok"] + [
        f"{t:.6f},{ms:.3f},{st},{ok}" for t, ms, st, ok in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_local_command_paces_each_user_and_logs_requests(tmp_path: Path) -> None:
    load = LocustLoad(
        host="http://127.0.0.1:8080", path="/echo", qps=200, users=4, duration_s=3, warmup_s=1, processes=2
    )
    argv = local_command(load, locustfile=Path("load/locustfiles/echo.py"), out_dir=tmp_path)
    joined = " ".join(argv)
    assert "-m locust -f load/locustfiles/echo.py --headless -u 4 -r 4 -t 5s" in joined  # 1 + 3 + 1 padding
    assert "--processes 2" in joined and "--meshproof-user-rps 50" in joined
    assert f"--meshproof-request-log-dir {tmp_path / 'requests'}" in joined
    assert f"--json-file {tmp_path / 'locust-stats'}" in joined
    unpaced = LocustLoad(host="http://h", path="/", qps=None, users=8, duration_s=5)
    assert unpaced.user_rps == 0 and "--processes" not in local_command(
        unpaced, locustfile=Path("f"), out_dir=tmp_path
    )


def test_request_logs_of_all_processes_merge_and_warm_up_is_cut(tmp_path: Path) -> None:
    # two worker processes, 50 req/s each for 4.5 s; the first second is warm-up
    a = [(T0 + i * 0.02, 0.5 + (i % 7) * 0.01, 200, 1) for i in range(225)]
    b = [(T0 + 0.01 + i * 0.02, 0.6, 200, 1) for i in range(225)]
    write_log(tmp_path / "requests-host-1.csv", a)
    write_log(tmp_path / "requests-host-2.csv", b)
    (tmp_path / "requests-host-3.csv").write_text(
        "start_time_s,response_time_ms,status,ok\n1795675116.5,0.", "utf-8"
    )
    samples = read_request_logs(tmp_path)
    assert len(samples) == 450 and np.all(np.diff(samples.start_s) >= 0)
    window = measured_window(samples, warmup_s=1.0, duration_s=3.0)
    assert window.per_second == [100, 100, 100]
    assert window.qps == 100.0 and len(window.samples) == 300
    assert window.samples.start_s.min() >= T0 + 1.0


def test_window_keeps_only_whole_seconds(tmp_path: Path) -> None:
    write_log(tmp_path / "requests-h-1.csv", [(T0 + i * 0.01, 1.0, 200, 1) for i in range(250)])
    window = measured_window(read_request_logs(tmp_path), warmup_s=0.5, duration_s=10)
    assert window.seconds == 1 and window.per_second == [100]


def _record(tmp_path: Path, rows: list[tuple[float, float, int, int]], qps: float | None, cpu: bool = False):
    write_log(tmp_path / "requests-h-1.csv", rows)
    window = measured_window(read_request_logs(tmp_path), warmup_s=0, duration_s=2)
    load = LocustLoad(host="http://127.0.0.1:1", path="/echo", qps=qps, users=2, duration_s=2)
    return samples_to_record(
        window,
        load=load,
        run_id="l",
        arm="local",
        repetition=1,
        order=0,
        limits=ValidityLimits(),
        started_at=datetime.now(UTC),
        cpu_warning=cpu,
    )


def test_record_from_samples_keeps_exact_percentiles(tmp_path: Path) -> None:
    rows = [(T0 + i * 0.01, 0.25 + i * 0.001, 200, 1) for i in range(250)]
    record = _record(tmp_path, rows, qps=100)
    assert record.valid and record.requests == 200 and record.actual_qps == 100
    exact = np.percentile([r[1] for r in rows[:200]], 90)
    assert record.latency.percentiles_ms["p90"] == pytest.approx(exact, abs=1e-9)
    assert record.histogram.percentile(90) == pytest.approx(exact, rel=0.005)
    assert record.per_second_counts == [100, 100]


def test_failures_slow_rate_and_cpu_warning_make_a_run_invalid(tmp_path: Path) -> None:
    rows = [(T0 + i * 0.01, 1.0, 503 if i % 10 == 0 else 200, 0 if i % 10 == 0 else 1) for i in range(250)]
    failing = _record(tmp_path, rows, qps=100)
    assert not failing.valid and "20 of 200 requests failed" in failing.invalid_reasons[0]
    assert failing.return_codes == {"200": 180, "503": 20}
    slow = _record(tmp_path, [(T0 + i * 0.02, 1.0, 200, 1) for i in range(125)], qps=100)
    assert not slow.valid and "50.0% of the requested 100" in slow.invalid_reasons[0]
    hot = _record(tmp_path, [(T0 + i * 0.01, 1.0, 200, 1) for i in range(250)], qps=100, cpu=True)
    assert not hot.valid and "CPU above 90%" in hot.invalid_reasons[0]


def test_locust_json_entries() -> None:
    (entry,) = parse_locust_json(json.dumps([ENTRY]))
    assert entry.num_requests == 1000 and entry.response_times["0.8"] == 600
    assert entry.per_second[int(T0) + 3] == 100
    with pytest.raises(LocustFailed, match="lacks an expected field"):
        parse_locust_json(json.dumps([{"name": "/echo"}]))
    with pytest.raises(LocustFailed, match="not JSON"):
        parse_locust_json("{")


def test_rounded_keys_become_buckets_of_the_rounding_step() -> None:
    assert rounding_step(42, "locust") == 1 and rounding_step(150, "locust") == 10
    assert rounding_step(0.42, "fine") == 0.01 and rounding_step(150, "fine") == 1
    hist = histogram_from_rounded({"0.45": 3, "150.0": 1}, "fine")
    assert [(round(b.start_ms, 3), round(b.end_ms, 3), b.count) for b in hist.buckets] == [
        (0.445, 0.455, 3),
        (149.5, 150.5, 1),
    ]


def master_log(stats: list[dict], *, scheme: str = "fine", extra: str = "") -> str:
    return "\n".join(
        [
            "MESHPROOF-LOCUST-BUCKETS " + scheme,
            "[2026-11-26 06:40:01,000] master/INFO/locust.main: Starting Locust 2.47.0",
            extra,
            "MESHPROOF-LOCUST-WARMUP-DONE",
            "MESHPROOF-LOCUST-EXIT 0",
            JSON_BEGIN,
            json.dumps(stats, indent=4),
            JSON_END,
        ]
    )


def test_master_log_round_trip_to_a_run_record() -> None:
    output = parse_master_log(master_log([ENTRY]))
    assert output.exit_code == 0 and output.scheme == "fine" and not output.cpu_warning
    load = LocustLoad(host="http://fortio-server.ns:8080", path="/echo", qps=100, users=4, duration_s=10)
    record = master_output_to_record(
        output,
        load=load,
        run_id="locust-sidecar-r1",
        arm="sidecar",
        repetition=1,
        order=3,
        limits=ValidityLimits(),
        placement=Placement(policy="any"),
    )
    assert record.valid and record.requests == 1000
    assert record.per_second_counts == [100] * 8  # first and last second are partial
    assert record.latency.percentiles_ms["p50"] == pytest.approx(0.8, abs=0.01)
    assert record.latency.mean_ms == pytest.approx(0.8125)


def test_master_log_with_cpu_warning_or_stock_rounding() -> None:
    hot = parse_master_log(
        master_log([ENTRY], extra="Worker x (index 0) exceeded cpu threshold (will only log this once)")
    )
    assert hot.cpu_warning
    coarse = parse_master_log(
        master_log([{**ENTRY, "response_times": {"1": 900, "6": 100}}], scheme="locust")
    )
    load = LocustLoad(host="http://h", path="/echo", qps=100, users=4, duration_s=10)
    record = master_output_to_record(
        coarse,
        load=load,
        run_id="r",
        arm="ambient",
        repetition=1,
        order=0,
        limits=ValidityLimits(),
        placement=Placement(),
    )
    assert any("coarse" in w for w in record.warnings)


def test_master_log_without_markers_is_a_clear_failure() -> None:
    with pytest.raises(LocustFailed, match="no result markers"):
        parse_master_log("Traceback (most recent call last): ...")


def test_master_script_prints_the_json_between_markers() -> None:
    script = master_shell_command(["locust", "-f", "/mnt/locust/locustfile.py", "--host", "http://a b"])
    assert script.startswith(
        "locust -f /mnt/locust/locustfile.py --host 'http://a b' --json-file /tmp/meshproof-locust;"
    )
    assert f"echo {JSON_BEGIN}; cat /tmp/meshproof-locust.json" in script and script.endswith(
        f"echo {JSON_END}"
    )
