"""`meshproof bench` command: exit codes and one-line errors; compare on synthetic results files.

The real-tool paths (fortio and Locust against a local server) are in tests/local_real/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_data.bench_runs import run_record

from meshproof.bench.model import BenchmarkResults
from meshproof.commands import bench as bench_cmd


def results_dir(
    tmp_path: Path, name: str, scale: float, *, valid: bool = True, seed: int = 0, reps: int = 3
) -> Path:
    """A results file of `reps` repetitions; each repetition moves by a run-level drift (as on a host)."""
    rng = np.random.default_rng(seed)
    runs = []
    for rep in range(1, reps + 1):
        samples = (0.3 + rng.lognormal(np.log(0.2), 0.3, 20000)) * scale * (1 + rng.normal(0, 0.02))
        run = run_record(
            samples,
            arm="local",
            rep=rep,
            actual_qps=(1000 if valid else 700) - rng.uniform(0, 2),
            valid=valid,
        )
        runs.append(run.model_copy(update={"connections": 8, "order": rep - 1}))
    directory = tmp_path / name
    BenchmarkResults(kind="local", runs=runs).save(directory)
    return directory


def local_fortio_argv(url: str, output: Path) -> list[str]:
    """`meshproof bench local`: one second of fortio at 10 QPS over one connection against `url`."""
    return [
        "local",
        "--url",
        url,
        "--tool",
        "fortio",
        "--qps",
        "10",
        "--connections",
        "1",
        "--duration",
        "1",
        "--output",
        str(output),
    ]


def test_register_adds_bench_with_three_actions() -> None:
    parser = argparse.ArgumentParser(prog="meshproof")
    bench_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "compare", "a", "b", "--threshold-pct", "5"])
    assert args.func is bench_cmd.cmd_compare and args.threshold_pct == 5
    args = parser.parse_args(["bench", "report", "dir"])
    assert args.func is bench_cmd.cmd_report
    args = parser.parse_args(
        [
            "bench",
            "local",
            "--url",
            "http://127.0.0.1:1/",
            "--tool",
            "fortio",
            "--qps",
            "max",
            "--connections",
            "2",
            "--duration",
            "3",
            "--output",
            "o",
        ]
    )
    assert args.qps is None and args.repetitions == 3 and args.func is bench_cmd.cmd_local
    assert args.url == ["http://127.0.0.1:1/"] and args.processes is None


def test_bench_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_cmd.main([]) == 2
    assert "choose an action: local, compare, calibrate or report" in capsys.readouterr().err


def test_local_refuses_a_non_loopback_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_cmd.main(local_fortio_argv("http://192.0.2.10:8080/echo", tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and "is not loopback" in err and "--allow-remote" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "benchmark.json").exists()


def test_local_without_fortio_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    from meshproof import tools

    monkeypatch.delenv("MESHPROOF_FORTIO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("MESHPROOF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tools, "checkout_bin_dir", lambda: tmp_path / "checkout-bin")
    code = bench_cmd.main(local_fortio_argv("http://127.0.0.1:9/echo", tmp_path / "o"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "go install fortio.org/fortio@v" in err[0]


def test_compare_flags_a_slowdown_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = results_dir(tmp_path, "base", 1.0, seed=1)
    slow = results_dir(tmp_path, "slow", 1.3, seed=2)
    assert bench_cmd.main(["compare", str(base), str(slow / "benchmark.json"), "--threshold-pct", "10"]) == 1
    out = capsys.readouterr().out
    assert "== p50 (ms)" in out and "REGRESSED (exit 1)" in out
    report = json.loads((slow / "comparison.json").read_text(encoding="utf-8"))
    assert report["regression"] is True and report["schema"] == "meshproof.io/benchmark-comparison"
    assert report["verdict"] == "regressed" and report["exit_code"] == 1
    assert any(r["metric"] == "p50" and r["verdict"] == "regressed" for r in report["rows"])
    assert "# meshproof benchmark comparison" in (slow / "comparison.md").read_text(encoding="utf-8")
    html = (slow / "comparison.html").read_text(encoding="utf-8")
    assert "REGRESSED (exit 1)" in html and "<th>minimum latency effect</th><td>0.05 ms</td>" in html
    assert '<tr class="regressed">' in html and "<script" not in html


def test_compare_passes_an_unchanged_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = results_dir(tmp_path, "base", 1.0, seed=1)
    same = results_dir(tmp_path, "same", 1.0, seed=2)
    out_dir = tmp_path / "cmp"
    assert bench_cmd.main(["compare", str(base), str(same), "--output", str(out_dir)]) == 0
    assert "NO CHANGE (exit 0)" in capsys.readouterr().out
    assert (out_dir / "comparison.md").is_file() and not (same / "comparison.md").exists()


def test_compare_a_run_that_no_longer_sustains_the_load_is_not_a_regression(tmp_path: Path) -> None:
    base = results_dir(tmp_path, "base", 1.0)
    broken = results_dir(tmp_path, "broken", 1.0, valid=False)
    assert bench_cmd.main(["compare", str(base), str(broken)]) == 3
    report = json.loads((broken / "comparison.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "could not sustain the load" and report["regression"] is False
    assert report["rows"][0]["metric"] == "*" and "3 of 3 current runs invalid" in report["rows"][0]["reason"]


def test_compare_one_repetition_is_not_judged_and_an_improvement_has_its_own_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = results_dir(tmp_path, "one", 1.0, seed=1, reps=1)
    slow_one = results_dir(tmp_path, "slow-one", 1.3, seed=2, reps=1)
    assert bench_cmd.main(["compare", str(one), str(slow_one)]) == 4
    assert "NOT JUDGED (exit 4)" in capsys.readouterr().out
    base = results_dir(tmp_path, "base", 1.0, seed=1)
    fast = results_dir(tmp_path, "fast", 0.7, seed=2)
    assert bench_cmd.main(["compare", str(base), str(fast)]) == 5


def test_compare_min_delta_and_metric_selection(tmp_path: Path) -> None:
    base = results_dir(tmp_path, "base", 1.0, seed=1)
    slow = results_dir(tmp_path, "slow", 1.3, seed=2)
    # +30% of ~0.5 ms is far below a 5 ms minimum effect: not a regression worth failing a build for
    assert bench_cmd.main(["compare", str(base), str(slow), "--min-delta-ms", "5"]) == 0
    assert bench_cmd.main(["compare", str(base), str(slow), "--metrics", "throughput"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "missing-a", "missing-b"], "no benchmark.json"),
        (["compare", "A", "A", "--metrics", "p42"], "--metrics: unknown p42"),
        (["report", "missing-dir"], "no benchmark.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    results_dir(tmp_path, "A", 1.0)
    assert bench_cmd.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_compare_with_nothing_in_common(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = results_dir(tmp_path, "base", 1.0)
    other = tmp_path / "other"
    results = BenchmarkResults.model_validate_json((base / "benchmark.json").read_text(encoding="utf-8"))
    results.runs = [r.model_copy(update={"connections": 64}) for r in results.runs]
    results.save(other)
    assert bench_cmd.main(["compare", str(base), str(other)]) == 2
    assert "share no cell" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "a", "b", "--threshold-pct", "-1"], "argument --threshold-pct: must be >= 0, got -1"),
        (["compare", "a", "b", "--min-delta-ms", "-0.1"], "argument --min-delta-ms: must be >= 0, got -0.1"),
        (["calibrate", "--output", "o", "--threshold-pct", "-1"], "argument --threshold-pct: must be >= 0"),
        (["calibrate", "--output", "o", "--min-delta-ms", "-1"], "argument --min-delta-ms: must be >= 0"),
        (["calibrate", "--output", "o", "--group-size", "1"], "argument --group-size: must be >= 2"),
    ],
)
def test_negative_thresholds_and_a_group_of_one_are_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_cmd.main(argv)
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]
