"""Locate the evaluation photos in ../shared/data (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """Return the shared data folder, or None when it is absent."""
    candidates = [os.environ.get("FLATSITE_SHARED_DATA", ""), str(REPO_ROOT.parent / "shared" / "data")]
    for candidate in candidates:
        if candidate and Path(candidate, "houses").is_dir():
            return Path(candidate)
    return None


def require_shared_data() -> Path:
    """Return the shared data folder or skip the calling test cleanly."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("../shared/data is absent; set FLATSITE_SHARED_DATA to run this test")
    return found
