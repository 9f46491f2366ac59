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


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshproof",
        description="Conformance and benchmark suite for Istio (OSSM 3.2 / Istio 1.27), sidecar and ambient.",
    )
    parser.add_argument("--version", action="version", version=f"meshproof {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in commands:
        module = importlib.import_module(f"meshproof.commands.{name}")
        module.register(subparsers)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (the first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Import only the command that runs: `bench` pulls in scipy and matplotlib, seconds of start-up that
    # `cleanup` against a dead cluster or `doctor` should not pay. `--help` and typos load them all.
    chosen = chosen_command(argv)
    parser = build_parser((chosen,) if chosen else COMMANDS)
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
