"""`meshproof tools list|install`: show the pinned external CLIs and install missing ones into the cache."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshproof import tools
from meshproof.config import load_config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tools",
        help="list or install the pinned external CLIs (kind, kubectl, istioctl, helm, fortio)",
        description="Pinned external CLIs. Installs go to the meshproof cache and are checksum-verified.",
    )
    actions = parser.add_subparsers(dest="tools_command", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="where each tool is found and whether its version fits")
    listing.set_defaults(func=cmd_list)

    install = actions.add_parser("install", help="download missing tools (or the named ones) into the cache")
    install.add_argument(
        "names", nargs="*", metavar="NAME", help=f"tools to install ({', '.join(tools.PINNED)})"
    )
    install.add_argument(
        "--offline", action="store_true", default=None, help="never download (env MESHPROOF_OFFLINE)"
    )
    install.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache root; binaries go to <dir>/bin (default ${tools.CACHE_ENV} or ~/.cache/meshproof)",
    )
    install.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help=(
            "download from a mirror that keeps the upstream paths (pinned checksums are still enforced; "
            "a publisher's checksum file is then read from the mirror too)"
        ),
    )
    install.set_defaults(func=cmd_install)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table (also used by `meshproof doctor`)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def verification_label(spec: tools.ToolSpec, plat: tools.Platform | None) -> str:
    """How `meshproof tools install` would check this tool's download here."""
    if plat is None:
        return "unsupported platform"
    return spec.verification_for(plat).label


def cmd_list(args: argparse.Namespace) -> int:
    try:
        plat: tools.Platform | None = tools.current_platform()
    except tools.UnsupportedPlatform:
        plat = None
    rows = []
    for name, spec in tools.PINNED.items():
        st = tools.inspect_tool(name)
        path = str(st.path) if st.path else "-"
        rows.append([name, st.pinned, path, st.found or "-", st.status, verification_label(spec, plat)])
    print(render_table(["tool", "pinned", "found at", "found version", "status", "install verifies"], rows))
    if plat is not None and any(
        spec.verification_for(plat) is tools.Verification.PUBLISHER_FILE for spec in tools.PINNED.values()
    ):
        print(
            "publisher .sha256 (not pinned): the SHA-256 is read at install time from the checksum file the "
            "publisher ships next to the archive (same origin, weaker than a pinned sum)"
        )
    print(f"cache: {tools.cache_bin_dir()}")
    return 0


def _offline(args: argparse.Namespace) -> bool:
    """--offline, or MESHPROOF_OFFLINE / a profile, read the way every other command reads them."""
    return load_config({"offline": args.offline}).offline


def _wanted(names: Sequence[str]) -> list[str]:
    if names:
        unknown = [n for n in names if n not in tools.PINNED]
        if unknown:
            raise tools.InstallError(
                f"unknown tool(s) {', '.join(unknown)}; meshproof pins: {', '.join(tools.PINNED)}"
            )
        return list(dict.fromkeys(names))
    # Without names: whatever is not already usable.
    return [n for n in tools.PINNED if tools.inspect_tool(n).status != "ok"]


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def cmd_install(args: argparse.Namespace) -> int:
    root = args.cache_dir.expanduser() if args.cache_dir else tools.cache_dir()
    try:
        names = _wanted(args.names)
    except tools.ToolError as exc:
        print(f"meshproof tools install: {exc}", file=sys.stderr)
        return 2
    if not names:
        print("all pinned tools are present with fitting versions; nothing to install")
        return 0
    failed = 0
    for name in names:
        try:
            path = tools.install_tool(
                name, cache_dir=root, offline=_offline(args), base_url_override=args.mirror, note=_note
            )
        except tools.ToolError as exc:
            failed += 1
            print(f"{name}: {exc}", file=sys.stderr)
            continue
        print(f"{name} {tools.PINNED[name].version}: {path}")
    bin_dir = tools.cache_bin_dir(root)
    if failed < len(names) and str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
        print(f'note: tools on PATH win over the cache; to prefer the cache: export PATH="{bin_dir}:$PATH"')
    return 1 if failed else 0
