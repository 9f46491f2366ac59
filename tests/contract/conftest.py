"""Contract tier: the fetched upstream definitions, or one clear failure telling how to fetch them."""

from __future__ import annotations

import pytest

from meshproof.contract.upstream import Upstream, UpstreamMissing, load_upstream


@pytest.fixture(scope="session")
def upstream() -> Upstream:
    try:
        return load_upstream()
    except UpstreamMissing as exc:
        # Fail, never skip: CI always fetches first, so missing definitions mean the check did not run.
        pytest.fail(str(exc), pytrace=False)
