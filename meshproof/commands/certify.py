"""`meshproof certify`: run the conformance suites and pack a submission bundle.

The suites run in a child pytest process with the same options, so a certification run is exactly a user's
run; the bundle is built afterwards from its results dir, also when the run failed or was interrupted (the
reviewer sees what happened), but the exit code says whether the bundle proves conformance.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from meshproof.config import OPTIONS, add_argparse_options, config_from_namespace
from meshproof.reporting.bundle import BundleError, build_bundle
from meshproof.reporting.conformance import REPORT_FILENAME
from meshproof.reporting.results_dir import prepare_results_dir, reuse_requested


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "certify",
        help="run the conformance suites and pack a certification bundle",
        description="Runs `pytest suites/conformance` with the given options, then writes "
        "<results-dir>.certification.tar.gz with the results, environment facts and a SHA-256 manifest.",
    )
    add_argparse_options(parser)
    parser.add_argument(
        "--bundle-only", action="store_true", help="do not run the suites; bundle an existing --results-dir"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --, e.g. -- -m ambient")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_namespace(args)
    if not args.bundle_only:
        # a fresh results dir, so the bundle holds this run's files only; refused here in one line
        prepare_results_dir(cfg.results_dir, cfg.run_id, reuse=reuse_requested())
        # the child reuses the run id so the bundle and the report agree
        env = {**os.environ, "MESHPROOF_RUN_ID": cfg.run_id}
        rc = subprocess.call(pytest_command(args, cfg.results_dir), env=env)
        if rc == 4 and not (cfg.results_dir / REPORT_FILENAME).exists():
            print("meshproof certify: the suites could not start; see the message above", file=sys.stderr)
            return 4
    try:
        archive = build_bundle(cfg.results_dir)
    except BundleError as exc:
        print(f"meshproof certify: {exc}", file=sys.stderr)
        return 2
    report = yaml.safe_load((cfg.results_dir / REPORT_FILENAME).read_text()) or {}
    summary = report.get("summary", {})
    print(f"meshproof certify: bundle {archive}")
    conformant = report.get("status") == "complete" and not (summary.get("failed") or summary.get("error"))
    if not conformant:
        print(
            f"meshproof certify: run is {report.get('status')} with {summary.get('failed', 0)} failed, "
            f"{summary.get('error', 0)} errors: the bundle does not prove conformance",
            file=sys.stderr,
        )
    return 0 if conformant else 1


def pytest_command(args: argparse.Namespace, results_dir: Path) -> list[str]:
    """The child pytest command: the same option values, the resolved run id and results dir."""
    command = [sys.executable, "-m", "pytest", "suites/conformance"]
    for opt in OPTIONS:
        value = getattr(args, opt.dest, None)
        if value in (None, False) or opt.dest == "results_dir":
            continue
        if opt.flag_kind == "bool":
            command.append(opt.flag)
        elif opt.flag_kind == "append":
            for item in value:
                command += [opt.flag, str(item)]
        else:
            command += [opt.flag, str(value)]
    return [*command, "--results-dir", str(results_dir), *args.pytest_args]
