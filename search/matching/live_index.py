"""The live index each process searches: loaded once, reloaded when another version goes live. Reads only.

A version shares all but its newest segments with the one before, and segments are opened (mapped and
checksummed) once per process (search.ml.index.segment), so following a new version costs what was added.
A live version that does not load is never repaired here (that would put a rebuild on the request path):
search serves the newest good version and the periodic reconciler (index_reconcile) repairs.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from search.ml.index import IndexCorrupt, VectorIndex
from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore
from search.models import IndexVersion

log = logging.getLogger(__name__)
AnyIndex = VectorIndex | SegmentedIndex
# Keyed on the live row's identity, not just its version number: a restored or
# re-created database (or a test with another data dir) can reuse version 1.
_Key = tuple[int, int, str]  # (row pk, version, path) of the live IndexVersion
_cache: dict[str, tuple[_Key, AnyIndex]] = {}
_cache_lock = threading.Lock()


def index_store(encoder: str) -> IndexStore:
    """The on-disk store of one encoder's index versions."""
    return IndexStore(Path(settings.INDEX_ROOT) / encoder)


def live_version(encoder: str) -> int | None:
    """Version number of the encoder's live index, or None."""
    return (
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE)
        .values_list("version", flat=True)
        .first()
    )


def index_for_search(encoder: str) -> AnyIndex | None:
    """The live index, loaded once per process and reloaded when a newer version goes live.

    A live version that fails to load (checksum, missing segment) is skipped: the newest good version is
    served until the reconciler has repaired the live one.
    """
    live = (
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE)
        .values_list("pk", "version", "path")
        .first()
    )
    if live is None:
        return None
    key = (int(live[0]), int(live[1]), str(live[2]))
    with _cache_lock:
        cached = _cache.get(encoder)
        if cached is not None and cached[0] == key:
            return cached[1]
        store = index_store(encoder)
        try:
            index = store.load(key[1])[0]
        except IndexCorrupt:
            log.exception("live %s index v%s unreadable; serving the newest good version", encoder, key[1])
            try:
                index = store.load()[0]  # cached under the damaged row: the next live switch reloads
            except IndexCorrupt:
                return cached[1] if cached else None
        _cache[encoder] = (key, index)
        return index
