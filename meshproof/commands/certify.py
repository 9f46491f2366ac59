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

from meshproof.config import OPTIONS, ConfigError, add_argparse_options, config_from_namespace
from meshproof.profiles import PROFILES, get_profile
from meshproof.reporting.bundle import BundleError, build_bundle
from meshproof.reporting.conformance import REPORT_FILENAME
from meshproof.reporting.results_dir import prepare_results_dir, reuse_requested
from meshproof.reporting.verdict import judge

# pytest arguments that narrow the selection: a profile's selection is fixed. The pytest plugin refuses the
# same ones (fixtures/run.py); this pre-check says so before a child pytest starts.
NARROWING_ARGS = (
    "-m",
    "-k",
    "--deselect",
    "--ignore",
    "--ignore-glob",
    "--lf",
    "--last-failed",
    "--sw",
    "--stepwise",
)
VALUED_ARGS = ("-m", "-k", "--deselect", "--ignore", "--ignore-glob")


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
    parser.add_argument(
        "--profile-name",
        choices=sorted(PROFILES),
        help="certify a profile: its fixed required and optional tests (no -m/-k narrowing allowed)",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --, e.g. -- -m ambient")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_namespace(args)
    rc = 0
    if args.profile_name:
        try:
            get_profile(args.profile_name).check_run(cfg)
        except ConfigError as exc:
            print(f"meshproof certify: {exc}", file=sys.stderr)
            return 2
        narrowing = narrowing_args(args.pytest_args)
        if narrowing:
            print(
                f"meshproof certify: profile {args.profile_name} is a fixed selection; drop "
                f"{' '.join(narrowing)} (it could leave out required tests)",
                file=sys.stderr,
            )
            return 2
    if not args.bundle_only:
        # a fresh results dir, so the bundle holds this run's files only; refused here in one line
        prepare_results_dir(cfg.results_dir, cfg.run_id, reuse=reuse_requested())
        # the child reuses the run id so the bundle and the report agree
        env = {**os.environ, "MESHPROOF_RUN_ID": cfg.run_id}
        rc = subprocess.call(pytest_command(args, cfg.results_dir), env=env)
        if rc != 0 and not (cfg.results_dir / REPORT_FILENAME).exists():
            print(
                f"meshproof certify: the suites could not start (pytest exit {rc}); see the message above",
                file=sys.stderr,
            )
            return rc
    try:
        archive = build_bundle(cfg.results_dir)
    except BundleError as exc:
        print(f"meshproof certify: {exc}", file=sys.stderr)
        return 2
    report = yaml.safe_load((cfg.results_dir / REPORT_FILENAME).read_text()) or {}
    print(f"meshproof certify: bundle {archive}")
    verdict = judge(report)
    if not verdict.conformant:
        print(f"meshproof certify: {verdict.reason}: the bundle does not prove conformance", file=sys.stderr)
        return verdict.exit_code
    # a conformant report and a failing pytest child disagree: trust the failure
    return rc


def narrowing_args(pytest_args: list[str]) -> list[str]:
    """The pytest arguments that could leave out tests: selection flags (with their values), test paths."""
    found: list[str] = []
    takes_value = False
    for arg in pytest_args:
        if takes_value:
            found.append(arg)
            takes_value = False
        elif arg in NARROWING_ARGS:
            found.append(arg)
            takes_value = arg in VALUED_ARGS
        elif arg.split("=")[0] in NARROWING_ARGS or arg[:2] in ("-m", "-k"):
            found.append(arg)  # --deselect=x, -mmtls
        elif not arg.startswith("-") and ("::" in arg or Path(arg).exists()):
            found.append(arg)
    return found


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
    profile = ["--profile-name", args.profile_name] if getattr(args, "profile_name", None) else []
    return [*command, "--results-dir", str(results_dir), *profile, *args.pytest_args]
