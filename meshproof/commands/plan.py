"""`meshproof plan`: print every command and manifest an install would run, in order, touching no cluster.

Takes the same options as the suites. `--output DIR` writes the plan as numbered files instead
(`01-<step>.sh`, `02-<step>.yaml`, ... and `plan.txt`). Output is deterministic: the same options give
byte-identical text. Impossible combinations exit 2 with one line saying why.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshproof.config import ConfigError, add_argparse_options, config_from_namespace

EXIT_OK = 0
EXIT_REFUSED = 2

DESCRIPTION = (
    "Show every command and manifest the install for these options would run, in order, "
    "without touching a cluster."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_argparse_options(parser)
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        default=None,
        help="write the plan as numbered files into DIR instead of printing it",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="show what an install would do", description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `meshproof --help` does not load the plan machinery.
    from meshproof.mesh.plan import build_plan

    try:
        cfg = config_from_namespace(args)
        plan = build_plan(cfg)
    except ConfigError as exc:  # UnsupportedCombination is a ConfigError
        print(f"meshproof plan: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.output is not None:
        written = plan.write(args.output)
        print(f"wrote {len(written)} files ({len(plan.steps)} steps) to {args.output}")
        return EXIT_OK
    sys.stdout.write(plan.render_text())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshproof plan", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
