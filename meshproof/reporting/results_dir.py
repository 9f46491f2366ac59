"""A fresh results directory per run, so a report, junit.xml or bundle never mixes in an earlier run's files.

The default results dir is `reports/<new run id>`, fresh by construction. A run id given again
(`MESHPROOF_RUN_ID`) or a chosen `--results-dir` can point at a directory an earlier run filled: that run
stops with one line, unless reuse is asked with `MESHPROOF_REUSE_RESULTS=1`, which empties the directory
first. Only a directory meshproof wrote (it holds the `.meshproof-results` marker or a conformance report)
is ever emptied: `--results-dir ~` with reuse asked is refused, never wiped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from meshproof.config import ConfigError, parse_bool

REUSE_ENV = "MESHPROOF_REUSE_RESULTS"
MARKER = ".meshproof-results"
_WRITTEN_BY_MESHPROOF = (MARKER, "conformance-report.yaml")


def reuse_requested(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(REUSE_ENV, "").strip()
    return bool(value) and parse_bool(value, REUSE_ENV)


def prepare_results_dir(path: Path, run_id: str, *, reuse: bool) -> Path:
    """Create `path` empty for run `run_id`; raise ConfigError (one line) when it holds another run's files.

    Empty or missing: created. Holding files: emptied when `reuse` and meshproof wrote them, refused
    otherwise. The marker written here is a dotfile, so bundles and reports do not carry it.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--results-dir: {path} exists and is not a directory")
    existing = [e for e in sorted(path.iterdir()) if not _own_marker(e, run_id)] if path.is_dir() else []
    if existing:
        if not any((path / name).exists() for name in _WRITTEN_BY_MESHPROOF):
            raise ConfigError(
                f"--results-dir: {path} is not empty and holds no meshproof results; "
                "choose an empty directory"
            )
        if not reuse:
            raise ConfigError(
                f"--results-dir: {path} already holds the results of an earlier run; use a new run id, "
                f"remove it, or set {REUSE_ENV}=1 to empty it and reuse it"
            )
        for entry in existing:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text(f"{run_id}\n")
    return path


def _own_marker(entry: Path, run_id: str) -> bool:
    """The marker of this very run (certify prepares the dir, then its pytest child prepares it again)."""
    return entry.name == MARKER and entry.is_file() and entry.read_text().strip() == run_id
