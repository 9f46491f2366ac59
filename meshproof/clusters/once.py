"""Do a piece of work once per test run, however many processes ask for it (pytest-xdist workers).

The first caller takes a file lock in a directory all workers share, does the work and writes the result
(or its failure) next to the lock; every later caller waits on the lock and reads it. A failure is
recorded too, so N workers report the one real error instead of each retrying a ten-minute install.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout


class ProvisionFailed(Exception):
    """The work failed in this run (perhaps in another worker); the message is that failure."""


class RunOnce:
    def __init__(self, shared_dir: Path, key: str, *, lock_timeout: float) -> None:
        shared_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = shared_dir / f"meshproof-{key}.json"
        self.lock_path = shared_dir / f"meshproof-{key}.lock"
        self.key = key
        self.lock_timeout = lock_timeout

    def ensure(self, token: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the result of `work` for `token`, running it only if no process of this run has yet.

        `token` names what the work produces (e.g. the MeshSpec fingerprint); a recorded state for another
        token means two configurations share one run directory, which is a bug, and is refused.
        """
        try:
            with FileLock(str(self.lock_path), timeout=self.lock_timeout):
                state = self.read()
                if state is not None:
                    if state.get("token") != token:
                        raise ProvisionFailed(
                            f"{self.key}: this run already provisioned a different configuration "
                            f"({state.get('token')}, not {token})"
                        )
                    if state.get("status") == "done":
                        return dict(state.get("result") or {})
                    raise ProvisionFailed(str(state.get("error") or f"{self.key} failed earlier in this run"))
                try:
                    result = work()
                except Exception as exc:
                    self._write({"token": token, "status": "failed", "error": _one_line(exc)})
                    raise
                self._write({"token": token, "status": "done", "result": result})
                return result
        except Timeout:
            raise ProvisionFailed(
                f"{self.key}: gave up after {self.lock_timeout:.0f}s waiting for another worker to finish "
                "provisioning; raise --timeout-scale"
            ) from None

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return None  # a torn write cannot happen (atomic replace); a foreign file is treated as absent
        return data if isinstance(data, dict) else None

    def result(self) -> dict[str, Any] | None:
        """The recorded result when the work is done, else None (for teardown)."""
        state = self.read()
        if state and state.get("status") == "done":
            return dict(state.get("result") or {})
        return None

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.state_path)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())
