"""Real fortio (the pinned release, installed by .ci/install-fortio) against a real HTTP server on
127.0.0.1 for a few seconds: results are sane, a server that cannot keep up makes the run invalid, and a
dead target is a clear failure. No test asserts a latency or throughput figure: this machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshproof.bench.fortio import (
    FortioFailed,
    FortioLoad,
    FortioMissing,
    find_fortio,
    run_fortio_local,
    to_run_record,
)
from meshproof.bench.local import LocalArm, LocalBenchSpec, run_local
from meshproof.bench.localserver import serving
from meshproof.bench.validity import ValidityLimits

pytestmark = pytest.mark.local_real

# Runs of 2 s on 2 shared cores: fortio counts -uniform's start offsets and the last call into its
# elapsed time (~1% at 2 s), and a scheduler hiccup skips a -nocatchup slot, so sanity runs allow 5%.
# The rule itself is what test_a_server_that_cannot_keep_up_makes_the_run_invalid exercises here (and
# the unit tests, at exactly 99%).
SANITY_LIMITS = ValidityLimits(min_qps_ratio=0.95)


@pytest.fixture(scope="module")
def fortio() -> Path:
    try:
        return find_fortio()
    except FortioMissing as exc:
        pytest.fail(str(exc))  # CI installs it (.ci/install-fortio); a missing tool is a broken setup


def test_fixed_qps_run_is_sane(fortio: Path, tmp_path: Path) -> None:
    with serving() as base:
        spec = LocalBenchSpec(
            arms=(LocalArm("local", f"{base}/echo"),),
            repetitions=1,
            tool="fortio",
            qps=200,
            connections=4,
            duration_s=2,
            warmup_s=0.5,
            limits=SANITY_LIMITS,
        )
        results = run_local(spec, tmp_path)
    (run,) = results.runs
    assert run.valid, run.invalid_reasons
    assert 380 <= run.requests <= 404 and run.errors == 0 and run.return_codes == {"200": run.requests}
    assert run.socket_count == 4  # keep-alive: one socket per connection (perf-anchors §7.2)
    p = run.latency.percentiles_ms
    assert run.latency.min_ms <= p["p50"] <= p["p90"] <= p["p99"] <= p["p99.9"] <= run.latency.max_ms
    assert run.histogram.count == run.requests
    assert run.tool_version.startswith("1.") and results.environment["fortio_version"] == run.tool_version
    raw = json.loads((tmp_path / run.raw_files[0]).read_text(encoding="utf-8"))
    assert raw["DurationHistogram"]["Count"] == run.requests and raw["Uniform"] and raw["NoCatchUp"]
    assert (tmp_path / "benchmark.json").is_file()


def test_a_server_that_cannot_keep_up_makes_the_run_invalid(fortio: Path) -> None:
    # 2 connections x (1 request per 50 ms) can carry at most 40 req/s: far below the 100 requested
    with serving(delay_ms=50) as base:
        load = FortioLoad(url=f"{base}/echo", qps=100, connections=2, duration_s=2)
        out = run_fortio_local(load, binary=fortio)
    record = to_run_record(
        out.result, load=load, run_id="slow", arm="local", repetition=1, order=0, limits=ValidityLimits()
    )
    assert not record.valid
    assert "the target or the load generator could not keep up" in record.invalid_reasons[0]
    assert record.actual_qps < 0.5 * 100 and record.errors == 0
    assert record.latency.percentiles_ms["p50"] >= 50  # the delay is in every request


def test_a_dead_target_is_a_clear_failure(fortio: Path) -> None:
    with serving() as base:
        dead = base  # the port is free again once the server is gone
    with pytest.raises(FortioFailed, match="exited 1: Aborting because of error -1"):
        run_fortio_local(FortioLoad(url=f"{dead}/echo", qps=10, connections=1, duration_s=1), binary=fortio)
