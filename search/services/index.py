"""Index versions: incremental adds, rebuilds, the live switch, and repair from the database."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from search.ml.index import IndexConfig, IndexCorrupt, IndexMissing, VectorIndex, build_index
from search.ml.index_reconcile import reconcile
from search.ml.index_store import IndexStore, IndexVersionInfo
from search.models import IndexVersion, Photo
from search.selectors import features_matrix

log = logging.getLogger(__name__)
# Keyed on the live row's identity, not just its version number: a restored or
# re-created database (or a test with another data dir) can reuse version 1.
_cache: dict[str, tuple[tuple[int, int, str], VectorIndex]] = {}
_cache_lock = threading.Lock()


def index_store(encoder: str) -> IndexStore:
    """The on-disk store of one encoder's index versions."""
    return IndexStore(Path(settings.INDEX_ROOT) / encoder)


def _register(encoder: str, info: IndexVersionInfo, *, live: bool, job_id: int | None = None) -> IndexVersion:
    status = IndexVersion.Status.LIVE if live else IndexVersion.Status.READY
    with transaction.atomic():
        if live:
            IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).update(
                status=IndexVersion.Status.RETIRED
            )
        row, _ = IndexVersion.objects.update_or_create(
            encoder=encoder,
            version=info.version,
            defaults={
                "path": str(info.path),
                "kind": info.kind,
                "count": info.count,
                "status": status,
                "job_id": job_id,
            },
        )
    return row


def _live_or_empty(store: IndexStore, encoder: str, dim: int) -> VectorIndex:
    live = IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).first()
    try:
        index, _ = store.load(live.version if live else None)
        return index
    except IndexMissing:
        return VectorIndex(IndexConfig(dim=dim))
    except IndexCorrupt:
        log.warning("live %s index unreadable; rebuilding from the database", encoder)
        ids, vectors = features_matrix(encoder)
        return build_index(ids, vectors, IndexConfig(dim=dim))


def index_add(
    encoder: str, ids: np.ndarray, vectors: np.ndarray, *, mark_indexed: bool = True
) -> IndexVersion:
    """Add vectors to the live index as a new version (no rebuild) and mark the photos indexed."""
    store = index_store(encoder)
    with store.lock():
        index = _live_or_empty(store, encoder, int(vectors.shape[1]))
        index.add(ids, vectors)
        if index.needs_rebuild:
            index.rebuild()
        info = store.write(index, meta={"encoder": encoder, "reason": "add"})
        row = _register(encoder, info, live=True)
        store.prune(keep=3, protect=[v for v in [_live_version(encoder)] if v is not None])
    if mark_indexed:
        Photo.objects.filter(pk__in=ids.tolist(), status=Photo.Status.PROCESSED).update(
            status=Photo.Status.INDEXED
        )
    return row


def index_remove(encoder: str, ids: list[int]) -> IndexVersion | None:
    """Remove photos from the live index (new version)."""
    store = index_store(encoder)
    with store.lock():
        try:
            index, _ = store.load(_live_version(encoder))
        except IndexMissing:
            return None
        if index.remove(np.asarray(ids, dtype=np.int64)) == 0:
            return None
        info = store.write(index, meta={"encoder": encoder, "reason": "remove"})
        return _register(encoder, info, live=True)


def index_rebuild(encoder: str, *, live: bool = True, job_id: int | None = None) -> IndexVersion:
    """Build a fresh version from every stored feature of the encoder (live at once unless asked not to)."""
    ids, vectors = features_matrix(encoder)
    if len(ids) == 0:
        raise ValueError(f"no {encoder} features to index; run extraction first")
    store = index_store(encoder)
    with store.lock():
        index = build_index(ids, vectors, IndexConfig(dim=int(vectors.shape[1])))
        info = store.write(index, meta={"encoder": encoder, "reason": "rebuild"})
        row = _register(encoder, info, live=live, job_id=job_id)
        store.prune(keep=5, protect=[v for v in [_live_version(encoder)] if v is not None])
    Photo.objects.filter(pk__in=ids.tolist(), status=Photo.Status.PROCESSED).update(
        status=Photo.Status.INDEXED
    )
    return row


def index_reconcile(encoder: str) -> dict[str, int]:
    """Make the live index hold exactly the database's feature rows (after a crash or manual edits)."""
    ids, vectors = features_matrix(encoder)
    store = index_store(encoder)
    with store.lock():
        if len(ids) == 0:
            return {"added": 0, "removed": 0, "updated": 0}
        index = _live_or_empty(store, encoder, int(vectors.shape[1]))
        counts = reconcile(index, (ids, vectors))
        if counts["added"] or counts["removed"]:
            info = store.write(index, meta={"encoder": encoder, "reason": "reconcile"})
            _register(encoder, info, live=True)
    return counts


def index_set_live(encoder: str, version: int) -> IndexVersion:
    """Make one built version the live one (atomic and reversible)."""
    row = IndexVersion.objects.get(encoder=encoder, version=version)
    if row.status == IndexVersion.Status.FAILED:
        raise ValueError(f"{row} failed to build and cannot go live")
    store = index_store(encoder)
    infos = {i.version: i for i in store.versions()}
    if version not in infos:
        raise ValueError(f"{row}: its file is missing or damaged")
    return _register(encoder, infos[version], live=True)


def _live_version(encoder: str) -> int | None:
    return (
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE)
        .values_list("version", flat=True)
        .first()
    )


def index_for_search(encoder: str) -> VectorIndex | None:
    """The live index, loaded once per process and reloaded when a newer version goes live."""
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
        try:
            index, _info = index_store(encoder).load(key[1])
        except IndexCorrupt:
            log.exception("live %s index v%s unreadable", encoder, key[1])
            return cached[1] if cached else None
        _cache[encoder] = (key, index)
        return index
