"""The running control-plane tier as the engine tests see it (scripts/control-plane/up.sh wrote its env file).

See tests/control_plane/conftest.py for what the tier is and what it can prove.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures_data.real_tools import REQUIRE_ENV
from meshproof.kube import Cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
UP_COMMAND = "bash scripts/control-plane/up.sh"


def state_dir() -> Path:
    override = os.environ.get("MESHPROOF_CONTROL_PLANE_DIR")
    return Path(override) if override else REPO_ROOT / ".cache" / "control-plane"


def read_env_file(path: Path) -> dict[str, str]:
    """The `export NAME=value` lines up.sh wrote."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


@dataclass(frozen=True)
class ControlPlane:
    """The running tier: where its kubeconfig, binaries, logs and ports are."""

    state: Path
    env: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return Path(self.env["KUBECONFIG"])

    @property
    def bin(self) -> Path:
        return Path(self.env["MESHPROOF_CP_BIN"])

    def port(self, name: str) -> int:
        return int(self.env[f"MESHPROOF_CP_{name}_PORT"])

    def pid(self, component: str) -> int:
        for line in (self.state / "pids").read_text().splitlines():
            name, pid = line.split()
            if name == component:
                return int(pid)
        raise LookupError(f"no recorded pid for {component}")

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.tool(
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--request-timeout=30s",
            *args,
            stdin=stdin,
            check=check,
        )

    def kwok_log(self, *, previous: bool = False) -> str:
        """What the logs API returns for every KWOK pod: the messages of the CRI log file up.sh wrote
        (`<time> <stream> <tag> <message>` a line)."""
        path = self.state / "kwok" / ("previous.log" if previous else "pod.log")
        return "".join(line.split(" ", 3)[3] + "\n" for line in path.read_text().splitlines())

    def dry_run(self, docs: list[dict[str, Any]]) -> tuple[bool, str]:
        """Server-side dry-run apply as meshproof applies (its field manager, conflicts forced): schema, CEL
        rules and admission webhooks run, nothing is stored. (admitted, kubectl's message)"""
        done = self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "--field-manager=meshproof",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(docs),
            check=False,
        )
        return done.returncode == 0, (done.stderr or done.stdout).strip()

    def tool(
        self, name: str, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / name), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def cluster(self, run_id: str, *, request_timeout: float = 30.0, poll_interval: float = 0.3) -> Cluster:
        return Cluster(
            None,
            self.kubeconfig,
            run_id,
            "control-plane",
            request_timeout=request_timeout,
            poll_interval=poll_interval,
        )


def _absent(message: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: the control-plane tier must run)", pytrace=False)
    pytest.skip(message)


def running_control_plane() -> ControlPlane:
    """The tier up.sh started, answering /readyz; otherwise a skip (a failure under CI) naming the command."""
    state = state_dir()
    env_file = state / "env"
    if not env_file.is_file():
        _absent(f"control-plane tier not running (no {env_file}); start it with `{UP_COMMAND}`")
    cp = ControlPlane(state, read_env_file(env_file))
    probe = cp.kubectl("get", "--raw", "/readyz", check=False)
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip()[:200]
        _absent(f"control-plane tier at {cp.env.get('MESHPROOF_CP_APISERVER')} does not answer: {detail}")
    return cp
