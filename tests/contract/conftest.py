"""Contract tier: the exact-version upstream data and the fetched definitions, or one clear failure."""

from __future__ import annotations

import pytest
from fixtures_data.shared_data import upstream as shared_upstream

from meshproof.contract.upstream import Upstream, UpstreamMissing, load_upstream


@pytest.fixture(scope="session")
def upstream() -> Upstream:
    shared = shared_upstream()  # ../shared/upstream: a skip for a developer without it, a failure in CI
    try:
        return load_upstream(shared)
    except UpstreamMissing as exc:
        # Fail, never skip: CI always fetches first, so missing definitions mean the check did not run.
        pytest.fail(str(exc), pytrace=False)
