"""Fixtures of the matching tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from search.matching import live_index


@pytest.fixture(autouse=True)
def _fresh_index_cache() -> Iterator[None]:
    """Each test loads its own live indexes: another test's (same encoder, same version) must not answer."""
    live_index._cache.clear()
    yield
    live_index._cache.clear()
