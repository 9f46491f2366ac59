"""Benchmark reports from a synthetic cluster result (four arms, both sweeps, a max-throughput and a Locust
run, resources, one invalid run): every plot is a real non-empty PNG, the HTML embeds exactly those
PNGs, the Markdown carries the mesh-cost intervals, and benchmark.json round-trips with its version."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from meshproof.bench.analysis import PATH_COMPONENTS, mesh_costs, path_costs, resource_costs, summarize
from meshproof.bench.histogram import histogram_from_samples, summary_from_samples
from meshproof.bench.model import (
    SCHEMA_VERSION,
    BenchmarkResults,
    ResourceUsage,
    ResultsError,
    RunRecord,
    load_results,
)
from meshproof.bench.plan import load_plan
from meshproof.reporting.bench import ReportPaths, rebuild_reports, write_reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# added latency per arm in ms: the shape of the published anchors (perf-anchors §0), not their values
COST = {"no-mesh": 0.0, "sidecar": 0.30, "ambient": 0.15, "waypoint": 0.45}
CPU_PER_PROXY = {
    "sidecar-client": 200,
    "sidecar-server": 210,
    "ztunnel-client-node": 60,
    "ztunnel-server-node": 55,
    "waypoint": 250,
}


def make_run(
    arm: str,
    tool: str,
    qps: float | None,
    conns: int,
    rep: int,
    order: int,
    scenarios: list[str],
    valid: bool = True,
) -> RunRecord:
    rng = np.random.default_rng(hash((arm, qps, conns, rep)) % 2**32)
    samples = 0.25 + COST[arm] + rng.lognormal(np.log(0.2 + 0.0001 * (qps or 3000) + 0.01 * conns), 0.3, 4000)
    return RunRecord(
        run_id=f"{tool}-{arm}-q{qps or 'max'}-c{conns}-r{rep}",
        tool=tool,  # type: ignore[arg-type]
        arm=arm,
        scenarios=scenarios,
        repetition=rep,
        order=order,
        target="http://fortio-server:8080/echo",
        requested_qps=qps,
        connections=conns,
        payload_bytes=1024,
        requested_duration_s=30,
        started_at=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        actual_duration_s=30,
        actual_qps=(qps or 9000 - 1000 * list(COST).index(arm)) * (1.0 if valid else 0.8),
        requests=4000,
        errors=0,
        latency=summary_from_samples(samples),
        histogram=histogram_from_samples(samples),
        per_second_counts=[133] * 30 if tool == "locust" else None,
        valid=valid,
        invalid_reasons=[] if valid else ["actual QPS 3200.0 is 80.0% of the requested 4000 (minimum 99%)"],
    )


@pytest.fixture(scope="module")
def results() -> BenchmarkResults:
    runs: list[RunRecord] = []
    resources: list[ResourceUsage] = []
    order = 0
    points = [(1000.0, c, ["connection-sweep"]) for c in (4, 16, 64)] + [
        (q, 16, ["qps-sweep"]) for q in (100, 4000)
    ]
    points.append((None, 16, ["max-throughput"]))
    for rep in (1, 2, 3):
        for qps, conns, scenarios in points:
            for arm in COST:
                valid = not (arm == "waypoint" and qps == 4000)
                run = make_run(arm, "fortio", qps, conns, rep, order, scenarios, valid)
                runs.append(run)
                order += 1
                for component in PATH_COMPONENTS[arm]:
                    resources.append(
                        ResourceUsage(
                            run_id=run.run_id,
                            arm=arm,
                            component=component,  # type: ignore[arg-type]
                            pod="p",
                            container="istio-proxy",
                            cpu_millicores=CPU_PER_PROXY[component] * (run.actual_qps / 1000),
                            memory_working_set_mib=60,
                            samples=4,
                        )
                    )
        for arm in COST:
            runs.append(make_run(arm, "locust", None, 32, rep, order, ["locust"]))
            order += 1
    return BenchmarkResults(
        kind="cluster",
        environment={"provider": "kind", "mode": "ambient"},
        plan=load_plan("smoke").model_dump(mode="json"),
        runs=runs,
        resources=resources,
        notes=["synthetic"],
    )


def test_summaries_exclude_invalid_runs(results: BenchmarkResults) -> None:
    cells = {s.cell.label(): s for s in summarize(results)}
    bad = cells["waypoint fortio qps=4000 c=16 1024B"]
    assert bad.valid_runs == 0 and bad.invalid_runs == 3 and bad.throughput is None and not bad.percentiles_ms
    assert "80.0% of the requested" in bad.invalid_reasons[0]
    good = cells["sidecar fortio qps=1000 c=16 1024B"]
    assert good.valid_runs == 3 and good.percentiles_ms["p50"] < good.percentiles_ms["p99"]


def test_mesh_costs_against_no_mesh(results: BenchmarkResults) -> None:
    costs = {c.cell.label(): {d.metric: d for d in c.diffs} for c in mesh_costs(results)}
    sidecar = costs["sidecar fortio qps=1000 c=16 1024B"]["p50"]
    assert sidecar.diff == pytest.approx(0.30, abs=0.05) and sidecar.diff_low > 0
    ambient = costs["ambient fortio qps=1000 c=16 1024B"]["p50"]
    assert ambient.diff == pytest.approx(0.15, abs=0.05)
    assert "waypoint fortio qps=4000 c=16 1024B" not in costs  # no valid run: no difference is made up


def test_resources_per_1000_rps_and_per_path(results: BenchmarkResults) -> None:
    costs = resource_costs(results)
    sidecar_server = next(c for c in costs if c.arm == "sidecar" and c.component == "sidecar-server")
    assert sidecar_server.cpu_per_1000_rps == pytest.approx(210)
    paths = path_costs(costs)
    assert paths["sidecar"][0] == pytest.approx(410) and paths["ambient"][0] == pytest.approx(115)
    assert paths["waypoint"][0] == pytest.approx(365) and paths["sidecar"][1] == 120


@pytest.fixture(scope="module")
def written(results: BenchmarkResults, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    """The reports written once for the tests that read them (plots cost about a second each)."""
    return write_reports(results, tmp_path_factory.mktemp("report"))


def test_reports_have_real_plots_embedded(written: ReportPaths) -> None:
    paths = written
    names = [p.name for p in paths.plots]
    assert names == [
        "overhead.png",  # the headline comes first
        "latency-cdf.png",
        "latency-by-arm.png",
        "latency-vs-qps.png",
        "latency-vs-connections.png",
        "throughput-vs-connections.png",
        "resources.png",
    ]
    html = paths.html.read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 7
    for plot_path in paths.plots:
        data = plot_path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert base64.b64encode(data).decode() in embedded
    assert "<script" not in html and "http://" not in html.replace(
        "http://fortio-server", ""
    )  # self-contained
    md = paths.markdown.read_text(encoding="utf-8")
    for heading in (
        "## Latency and throughput per cell",
        "## Difference to no-mesh",
        "## Proxy CPU and memory",
        "## Invalid runs",
        "## Runs in execution order",
    ):
        assert heading in md
    assert "### sidecar fortio qps=1000 c=16 1024B" in md
    # the per-cell table shows medians, the difference tables means: each table names its statistic
    assert "| p50 (median) |" in md and "| no-mesh (mean) | sidecar (mean) | diff (mean) |" in md
    assert "<th>p50 (ms, median)</th>" in html and "<th>no-mesh (mean)</th>" in html
    assert "req/s per loadgen core |" in md and "<th>req/s per loadgen core</th>" in html
    # every setting of the run is in both reports (issue 12: the HTML omitted duration, warm-up, ...)
    for key in ("duration_s", "warmup_s", "validity.min_qps_ratio", "fortio.connection_sweep.qps"):
        assert f"| {key} |" in md and f"<th>{key}</th>" in html


def test_headline_is_the_overhead_with_intervals_and_published_anchors(results: BenchmarkResults) -> None:
    from meshproof.reporting.bench_plots import PUBLISHED_OVERHEAD_MS, _headline_costs

    chosen = _headline_costs(mesh_costs(results))
    assert [c.cell.arm for c in chosen] == ["sidecar", "ambient", "waypoint"]
    point = {(c.cell.requested_qps, c.cell.connections) for c in chosen}
    assert len(point) == 1  # one load point, the one measured in the most arms
    diffs = {d.metric: d for d in chosen[0].diffs}
    assert diffs["p50"].paired and diffs["p50"].has_interval
    assert PUBLISHED_OVERHEAD_MS["ambient"][1] == {"p90": 0.17, "p99": 0.20}


def test_log_axis_ticks_are_plain_numbers() -> None:
    from meshproof.reporting.bench_plots import _plain

    assert [_plain(v) for v in (0.1, 0.25, 2.0, 40.0, 1000.0)] == ["0.1", "0.25", "2", "40", "1000"]


def test_json_round_trip_and_rebuild(results: BenchmarkResults, written: ReportPaths) -> None:
    loaded = load_results(written.json)
    assert loaded.runs == results.runs and loaded.version == SCHEMA_VERSION
    written.markdown.unlink()
    paths = rebuild_reports(written.json)
    assert paths.markdown.is_file() and len(paths.plots) == 7


def test_local_result_gets_only_the_plots_it_has_data_for(tmp_path: Path) -> None:
    run = make_run("no-mesh", "fortio", 200, 4, 1, 0, ["local"]).model_copy(update={"arm": "local"})
    paths = write_reports(BenchmarkResults(kind="local", runs=[run]), tmp_path)
    assert [p.name for p in paths.plots] == ["latency-cdf.png", "latency-by-arm.png"]
    assert "Difference to" not in paths.markdown.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no benchmark.json"),
        ("{", "not readable JSON"),
        (json.dumps({"schema": "other"}), "not a meshproof benchmark file"),
        (
            json.dumps({"schema": "meshproof.io/benchmark", "version": SCHEMA_VERSION + 1}),
            "upgrade meshproof",
        ),
        (
            json.dumps({"schema": "meshproof.io/benchmark", "version": 1, "kind": "moon"}),
            "invalid field kind",
        ),
    ],
)
def test_unreadable_results_give_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "benchmark.json").write_text(content, encoding="utf-8")
    with pytest.raises(ResultsError, match=message) as info:
        load_results(tmp_path)
    assert "\n" not in str(info.value)


def test_session_writes_its_report_with_environment_and_path_verdicts(
    results: BenchmarkResults, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from meshproof.bench.plan import load_plan
    from meshproof.bench.session import BenchSession, environment_facts
    from meshproof.checks.verdict import Verdict
    from meshproof.config import load_config

    cfg = load_config({"mode": "ambient", "provider": "kind", "results_dir": tmp_path}, env={})
    mesh = SimpleNamespace(spec=SimpleNamespace(summary=lambda: "istio 1.27.9 ambient (istioctl)"))
    cluster = SimpleNamespace(server_version=lambda: "v1.33.1")
    plan = load_plan("smoke")
    facts = environment_facts(cfg, mesh, cluster, plan)
    assert facts["sidecar_arm_profile"].startswith("ambient profile")  # type: ignore[union-attr]
    assert facts["kubernetes_version"] == "v1.33.1" and facts["profile"] == "smoke"
    session = BenchSession(directory=tmp_path / "benchmark", plan=plan, environment=facts)
    session.runs.extend(results.runs[:8])
    session.path_verdicts["waypoint"] = Verdict.failed(
        "arm waypoint: the server Service is not WaypointBound"
    )
    markdown = session.write().read_text(encoding="utf-8")
    assert "path check waypoint: arm waypoint: the server Service is not WaypointBound" in markdown
    assert load_results(tmp_path / "benchmark").plan["name"] == "smoke"


def test_session_records_what_a_plan_measured_and_notes_its_failures(
    results: BenchmarkResults, tmp_path: Path
) -> None:
    from meshproof.bench.plan import load_plan
    from meshproof.bench.runner import PlanOutcome
    from meshproof.bench.session import BenchSession

    session = BenchSession(directory=tmp_path / "benchmark", plan=load_plan("smoke"), environment={})
    session.record(PlanOutcome(runs=results.runs[:3], resources=results.resources[:2]))
    session.record(PlanOutcome(runs=results.runs[3:5], failures=["fortio sidecar q100: exit 1"]))

    assert session.runs == results.runs[:5] and session.resources == results.resources[:2]
    assert session.results().notes == ["failed: fortio sidecar q100: exit 1"]
