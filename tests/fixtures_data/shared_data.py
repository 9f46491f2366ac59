"""The read-only upstream data and real captures that engine tests use as fixtures and test vectors.

They live beside the repository, in `../shared/` (CI lays a copy there too): `upstream/` holds unchanged
upstream files at the exact refs meshproof targets, `captures/` what real ztunnel 1.27.9 (and istiod)
printed. MESHPROOF_SHARED_DIR points elsewhere. A developer without the folder gets a skip naming it; with
MESHPROOF_REQUIRE_REAL_TOOLS=1 (CI) a missing file fails the test, so no tier passes in CI by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures_data.real_tools import REQUIRE_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    """The shared data folder: $MESHPROOF_SHARED_DIR, else `../shared` next to the repository."""
    override = os.environ.get("MESHPROOF_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def _required(path: Path) -> Path:
    if path.exists():
        return path
    message = (
        f"shared data {path} is not here (set MESHPROOF_SHARED_DIR to the folder with upstream/, captures/)"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 needs it", pytrace=False)
    pytest.skip(message)


def upstream(*parts: str) -> Path:
    """A file or folder of `shared/upstream/` (for example `upstream("istio-1.27.9", "crd-all.gen.yaml")`)."""
    return _required(shared_root().joinpath("upstream", *parts))


def capture(*parts: str) -> Path:
    """A file or folder of `shared/captures/` (for example `capture("ztunnel-1.27.9", "plain")`)."""
    return _required(shared_root().joinpath("captures", *parts))
