"""Stand-in docker, kind, kubectl, istioctl and helm for runs that get past preflight but reach no cluster.

Each answers its version probe in the format the real tool prints for the pinned version (the same format
meshproof.tools parses) and refuses everything else with a line that says it is a stand-in: nothing here
imitates a real tool's error output. This is how the issue reporter reproduced the verdict defects.
"""

from __future__ import annotations

import os
from pathlib import Path

# (first arguments that answer, what they print); anything else exits 1 with a "stand-in" line on stderr
VERSION_ANSWERS = {
    "docker": {
        "info --format {{.ServerVersion}}": "27.3.1",
        "--version": "Docker version 27.3.1, build ce12230",
    },
    "kind": {"version": "kind v0.30.0 go1.24.6 linux/amd64", "get clusters": ""},
    "kubectl": {"version --client": "Client Version: v1.33.7\nKustomize Version: v5.6.0"},
    "istioctl": {"version --remote=false": "client version: 1.27.9"},
    # kind runs install metrics-server with helm, so preflight requires it
    "helm": {"version --short": "v3.19.2+g8766e71"},
}


def _script(name: str, answers: dict[str, str]) -> str:
    cases = "".join(
        f'  "{args}"*) printf "%s\\n" "{text}"; exit 0;;\n' if text else f'  "{args}"*) exit 0;;\n'
        for args, text in answers.items()
    )
    return (
        "#!/bin/sh\n"
        f'case "$*" in\n{cases}esac\n'
        f'echo "stand-in {name}: line one of the refusal" >&2\n'
        f'echo "stand-in {name}: cannot $*" >&2\n'
        "exit 1\n"
    )


def install_stand_ins(bin_dir: Path, names: tuple[str, ...] = tuple(VERSION_ANSWERS)) -> str:
    """Write the stand-ins into bin_dir; returns a PATH with only them and the system's basic tools."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = bin_dir / name
        path.write_text(_script(name, VERSION_ANSWERS[name]))
        path.chmod(0o755)
    return os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])
