"""`meshproof bench local | compare | report`.

    meshproof bench local --url [NAME=]URL [--url [NAME=]URL ...] --tool fortio|locust --qps N
                          --connections N --duration SECONDS [--repetitions N] [--warmup SECONDS] --output DIR
    meshproof bench compare BASELINE CURRENT [--threshold-pct P] [--min-delta-ms MS] [--metrics p50,p90]
    meshproof bench calibrate [--qps N] [--connections N] [--duration S] [--repetitions N]
                              [--shifts-ms 0,0.05,0.1,0.2] --output DIR
    meshproof bench report DIR

Exit codes: 2 the command could not do its job (bad input, tool missing, tool failed).
`compare` (meshproof.bench.compare.EXIT_CODES): 0 no change, 1 regressed, 3 could not sustain the load,
4 not judged (nothing could be judged, e.g. one repetition), 5 improved.
`local`: 0 every run valid, 1 a run was invalid (it is still written).
`calibrate`: 0 calibrated, 1 no trial could be judged (every trial had an invalid run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshproof.bench.analysis import mesh_costs, reference_arm
from meshproof.bench.calibrate import CALIBRATION_FILE, CalibrationSpec, run_calibration, table
from meshproof.bench.compare import (
    ALL_METRICS,
    DEFAULT_MIN_DELTA_MS,
    DEFAULT_THRESHOLD_PCT,
    Thresholds,
    compare_results,
)
from meshproof.bench.delayserver import MAX_DELAY_MS
from meshproof.bench.fortio import FortioFailed, FortioMissing
from meshproof.bench.local import LocalBenchError, LocalBenchSpec, parse_arms, run_local
from meshproof.bench.locust import LocustFailed
from meshproof.bench.model import BenchmarkResults, ResultsError, load_results, results_path
from meshproof.bench.stats import DEFAULT_REPETITIONS, MIN_REPS_FOR_INTERVAL
from meshproof.bench.validity import ValidityLimits
from meshproof.reporting.bench import fmt_interval, rebuild_reports, write_reports
from meshproof.reporting.bench_compare import console_tables, write_comparison

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="load a local endpoint, compare benchmark results, rebuild reports",
        description="Benchmark helpers. The cluster benchmark is `pytest suites/benchmark -m benchmark`.",
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    actions = parser.add_subparsers(dest="bench_command", metavar="ACTION")
    _register_local(actions)
    _register_compare(actions)
    _register_calibrate(actions)
    _register_report(actions)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print("meshproof bench: choose an action: local, compare, calibrate or report", file=sys.stderr)
    return EXIT_ERROR


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _group_size(text: str) -> int:
    value = int(text)
    if value < MIN_REPS_FOR_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be >= {MIN_REPS_FOR_INTERVAL} (a trial needs two runs a side for an interval), got {text}"
        )
    return value


def _qps(text: str) -> float | None:
    if text in ("0", "max"):
        return None
    return _positive_float(text)


def _register_local(actions: Any) -> None:
    p = actions.add_parser(
        "local", help="load one or more HTTP endpoints (arms) from this machine (loopback by default)"
    )
    p.add_argument(
        "--url",
        action="append",
        required=True,
        metavar="[NAME=]URL",
        help="target URL, e.g. http://127.0.0.1:8080/echo; repeat for an A/B comparison (arms alternate "
        "in a random order every repetition; the first is the reference)",
    )
    p.add_argument("--tool", choices=("fortio", "locust"), required=True)
    p.add_argument(
        "--qps", type=_qps, required=True, help="total requests/s; 0 or 'max' = as fast as possible"
    )
    p.add_argument("--connections", type=_positive_int, required=True, help="connections (Locust: users)")
    p.add_argument("--duration", type=_positive_float, required=True, help="measured seconds per repetition")
    p.add_argument(
        "--repetitions",
        type=_positive_int,
        default=DEFAULT_REPETITIONS,
        help=f"repetitions per arm (default {DEFAULT_REPETITIONS}; one gives no interval)",
    )
    p.add_argument(
        "--warmup", type=float, default=2.0, help="discarded warm-up seconds per repetition (default 2)"
    )
    p.add_argument("--payload-size", type=int, default=0, help="POST this many bytes instead of a GET")
    p.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help="Locust worker processes (default: all cores, minus one for a loopback target)",
    )
    p.add_argument("--arm", default="local", help="name of a single unnamed --url arm (default: local)")
    p.add_argument("--seed", type=int, default=0, help="seed of the arm order (reproducible)")
    p.add_argument(
        "--min-qps-ratio", type=float, default=0.99, help="a run below this share of --qps is invalid"
    )
    p.add_argument(
        "--max-error-pct", type=float, default=0.1, help="a run with more failed requests is invalid"
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --url (you own the target)"
    )
    p.add_argument("--output", type=Path, required=True, help="results dir (benchmark.json and reports)")
    p.set_defaults(func=cmd_local)


def _register_compare(actions: Any) -> None:
    p = actions.add_parser("compare", help="compare CURRENT against BASELINE; exit 1 on a regression")
    p.add_argument("baseline", type=Path, help="results dir or benchmark.json")
    p.add_argument("current", type=Path, help="results dir or benchmark.json")
    p.add_argument(
        "--threshold-pct",
        type=_non_negative_float,
        default=DEFAULT_THRESHOLD_PCT,
        help=f"relative threshold in percent (default {DEFAULT_THRESHOLD_PCT:g})",
    )
    p.add_argument(
        "--min-delta-ms",
        type=_non_negative_float,
        default=DEFAULT_MIN_DELTA_MS,
        help=f"minimum latency effect judged, ms (default {DEFAULT_MIN_DELTA_MS:g})",
    )
    p.add_argument(
        "--metrics",
        default=",".join(ALL_METRICS),
        help=f"comma-separated metrics to judge (default {','.join(ALL_METRICS)})",
    )
    p.add_argument(
        "--min-tail-samples",
        type=_positive_int,
        default=10,
        help="judge a percentile only with at least this many requests beyond it (default 10)",
    )
    p.add_argument(
        "--output", type=Path, default=None, help="where to write comparison.md/json (default: CURRENT dir)"
    )
    p.set_defaults(func=cmd_compare)


def _shifts(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ms values, got {text!r}") from None
    if not values or any(v < 0 or v > MAX_DELAY_MS for v in values):
        raise argparse.ArgumentTypeError(f"shifts must be 0..{MAX_DELAY_MS:g} ms, got {text!r}")
    return values


def _register_calibrate(actions: Any) -> None:
    defaults = CalibrationSpec()
    p = actions.add_parser(
        "calibrate",
        help="plant known slowdowns on a local busy-wait server: what this machine resolves",
        description="Starts a precise local delay server, plants shifts and prints the false-positive rate "
        "and the smallest shift resolved at p50/p90/p99 (table, and calibration.json in --output).",
    )
    p.add_argument("--qps", type=_positive_float, default=defaults.qps)
    p.add_argument("--connections", type=_positive_int, default=defaults.connections)
    p.add_argument("--duration", type=_positive_float, default=defaults.duration_s, help="seconds per run")
    p.add_argument("--warmup", type=float, default=defaults.warmup_s, help="discarded seconds per run")
    p.add_argument(
        "--repetitions",
        type=_positive_int,
        default=defaults.repetitions,
        help=f"repetitions per arm, cut into trials of --group-size (default {defaults.repetitions})",
    )
    p.add_argument(
        "--group-size",
        type=_group_size,
        default=defaults.group_size,
        help=f"repetitions per side of one trial (default {defaults.group_size}, as bench local)",
    )
    p.add_argument(
        "--shifts-ms",
        type=_shifts,
        default=defaults.shifts_ms,
        help="planted shifts in ms (default " + ",".join(f"{s:g}" for s in defaults.shifts_ms) + ")",
    )
    p.add_argument("--threshold-pct", type=_non_negative_float, default=DEFAULT_THRESHOLD_PCT)
    p.add_argument("--min-delta-ms", type=_non_negative_float, default=DEFAULT_MIN_DELTA_MS)
    p.add_argument(
        "--min-qps-ratio", type=float, default=0.99, help="a run below this share of --qps is invalid"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output", type=Path, required=True, help="results dir (benchmark.json, calibration.json)"
    )
    p.set_defaults(func=cmd_calibrate)


def _register_report(actions: Any) -> None:
    p = actions.add_parser("report", help="rebuild benchmark.md/html and plots from benchmark.json")
    p.add_argument("dir", type=Path, help="results dir (or its benchmark.json)")
    p.set_defaults(func=cmd_report)


def _fail(message: str) -> int:
    print(f"meshproof bench: {message}", file=sys.stderr)
    return EXIT_ERROR


def cmd_local(args: argparse.Namespace) -> int:
    try:
        arms = parse_arms(args.url, args.arm)
    except LocalBenchError as exc:
        return _fail(str(exc))
    spec = LocalBenchSpec(
        arms=arms,
        tool=args.tool,
        qps=args.qps,
        connections=args.connections,
        duration_s=args.duration,
        repetitions=args.repetitions,
        warmup_s=max(0.0, args.warmup),
        payload_bytes=max(0, args.payload_size),
        processes=args.processes,
        seed=args.seed,
        limits=ValidityLimits(min_qps_ratio=args.min_qps_ratio, max_error_ratio=args.max_error_pct / 100),
        allow_remote=args.allow_remote,
    )
    try:
        results = run_local(spec, args.output, progress=lambda msg: print(msg, file=sys.stderr))
    except (LocalBenchError, FortioMissing, FortioFailed, LocustFailed) as exc:
        return _fail(str(exc))
    paths = write_reports(results, args.output)
    invalid = [r for r in results.runs if not r.valid]
    print(f"wrote {paths.json}, {paths.markdown.name}, {paths.html.name}")
    print(f"{len(results.runs)} runs, {len(invalid)} invalid")
    for line in ab_lines(results):
        print(line)
    if invalid:
        print(
            f"meshproof bench: {len(invalid)} run(s) invalid: {invalid[0].invalid_reasons[0]}",
            file=sys.stderr,
        )
        return EXIT_REGRESSION
    return EXIT_OK


def ab_lines(results: BenchmarkResults) -> list[str]:
    """One line per arm of an A/B run: its difference to the first arm at p50/p90/p99, paired."""
    lines = []
    reference = reference_arm(results)
    for cost in mesh_costs(results):
        parts = []
        for d in cost.diffs:
            if d.metric in ("p50", "p90", "p99"):
                interval = fmt_interval(d.diff_low, d.diff_high) if d.has_interval else "no interval"
                parts.append(f"{d.metric} {d.diff:+.3f} ms {interval}")
        lines.append(f"{cost.cell.arm} - {reference}: " + ", ".join(parts))
    return lines


def _parse_metrics(text: str) -> tuple[str, ...]:
    metrics = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"--metrics: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(ALL_METRICS)}"
        )
    return metrics


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        metrics = _parse_metrics(args.metrics)
        thresholds = Thresholds(
            threshold_pct=args.threshold_pct,
            min_delta_ms=args.min_delta_ms,
            metrics=metrics,
            min_tail_samples=args.min_tail_samples,
        )
        baseline = load_results(args.baseline)
        current = load_results(args.current)
    except (ResultsError, ValueError) as exc:
        return _fail(str(exc).splitlines()[0])
    comparison = compare_results(
        baseline,
        current,
        thresholds,
        baseline_name=results_path(args.baseline),
        current_name=results_path(args.current),
    )
    if not comparison.rows:
        return _fail("BASELINE and CURRENT share no cell (same tool, arm, QPS, connections, payload)")
    print(console_tables(comparison))
    out_dir = args.output or results_path(args.current).parent
    md_path, _ = write_comparison(comparison, out_dir)
    print(f"wrote {md_path}")
    return comparison.exit_code


def cmd_calibrate(args: argparse.Namespace) -> int:
    try:
        spec = CalibrationSpec(
            qps=args.qps,
            connections=args.connections,
            duration_s=args.duration,
            warmup_s=max(0.0, args.warmup),
            repetitions=args.repetitions,
            group_size=args.group_size,
            shifts_ms=args.shifts_ms,
            thresholds=Thresholds(threshold_pct=args.threshold_pct, min_delta_ms=args.min_delta_ms),
            limits=ValidityLimits(min_qps_ratio=args.min_qps_ratio),
            seed=args.seed,
        )
        calibration, results = run_calibration(
            spec, args.output, progress=lambda m: print(m, file=sys.stderr)
        )
    except (ValueError, RuntimeError, LocalBenchError, FortioMissing, FortioFailed) as exc:
        return _fail(str(exc).splitlines()[0])
    write_reports(results, args.output)
    print(table(calibration))
    print(f"wrote {args.output / CALIBRATION_FILE}")
    if all(row.unsustained == row.trials for row in calibration.rows):
        print("meshproof bench: no trial could be judged: every trial had an invalid run", file=sys.stderr)
        return EXIT_REGRESSION
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    try:
        paths = rebuild_reports(args.dir)
    except ResultsError as exc:
        return _fail(str(exc))
    print(f"wrote {paths.markdown}, {paths.html} ({len(paths.plots)} plots)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m meshproof.commands.bench ...`), same parser as `meshproof bench`."""
    parser = argparse.ArgumentParser(prog="meshproof")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["bench", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
