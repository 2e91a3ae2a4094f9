"""Shared plumbing of the benches that measure the app itself: a fresh collection and app settings."""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common.paths import ROOT

# The app settings compared in the same run (the indexes are rebuilt between them). The raw setting is
# the app of the second session: no centring, no re-ranking, mirrored query embedded too.
SETTINGS: dict[str, dict[str, Any]] = {
    "raw cosine (no centring, no re-ranking)": {
        "FLATSITE_INDEX_CENTRE_MIN": 0,
        "FLATSITE_RERANK_ENCODER": "",
        "FLATSITE_SEARCH_MIRROR_QUERY": True,
    },
    "centred index, no re-ranking": {"FLATSITE_RERANK_ENCODER": ""},
    "centred + re-ranked, mirrored query too": {"FLATSITE_SEARCH_MIRROR_QUERY": True},
    "centred + re-ranked, query SIFT on the stored 640 frame": {"FLATSITE_SEARCH_QUERY_SIFT_SIDE": 0},
    "centred + re-ranked (default)": {},
}


def shared_or_exit() -> Path:
    """../shared/data, or exit with a message when it is absent."""
    sys.path.insert(0, str(ROOT))
    from tests.shared_data import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data is absent: nothing to benchmark")
    return shared


def collection_import(shared: Path, limit: int, extra: Path | None = None) -> tuple[Path, float]:
    """A fresh app (temporary data folder, SQLite) holding the first `limit` Houses photos and the
    folders under `extra` (one listing each), imported with `import_photos --inline`; (work dir, seconds)."""
    from bench.speed.search_speed import _setup, _subset

    work = Path(tempfile.mkdtemp(prefix="flatsite-bench-app-"))
    _setup(work / "data")
    from django.core.management import call_command

    houses = _subset(shared / "houses", limit, work / "houses", 0)
    started = time.perf_counter()
    call_command("import_photos", str(houses), "--inline", stdout=io.StringIO())
    if extra is not None:
        call_command("import_photos", str(extra), "--inline", stdout=io.StringIO())
    return work, time.perf_counter() - started


def indexes_rebuild() -> None:
    """Rebuild every active encoder's index under the current settings."""
    from search.matching import features, index

    for encoder in features.active_encoders():
        index.index_rebuild(encoder)
