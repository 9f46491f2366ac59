"""The `meshproof` command: one entry point, each subcommand in its own module under meshproof/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from meshproof import __version__
from meshproof.config import ConfigError

# Order is the order of `meshproof --help`.
COMMANDS = ("doctor", "plan", "bench", "report", "certify", "tools", "cleanup")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshproof",
        description="Conformance and benchmark suite for Istio (OSSM 3.2 / Istio 1.27), sidecar and ambient.",
    )
    parser.add_argument("--version", action="version", version=f"meshproof {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"meshproof.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"meshproof {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"meshproof {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
