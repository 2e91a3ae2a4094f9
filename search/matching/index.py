"""Index versions: incremental adds, rebuilds, the live switch, and repair from the database."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from search.listings.selectors import features_matrix
from search.ml.index import (
    IndexConfig,
    IndexCorrupt,
    IndexLocked,
    IndexMissing,
    VectorIndex,
    build_index,
)
from search.ml.index.reconcile import reconcile
from search.ml.index.store import IndexStore, IndexVersionInfo
from search.models import IndexVersion, Photo, SearchEncoderChoice
from search.ops.selectors import live_candidate, search_candidate

log = logging.getLogger(__name__)
# Keyed on the live row's identity, not just its version number: a restored or
# re-created database (or a test with another data dir) can reuse version 1.
_Key = tuple[int, int, str]  # (row pk, version, path) of the live IndexVersion
_cache: dict[str, tuple[_Key, VectorIndex]] = {}
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


def _config(vectors: np.ndarray) -> IndexConfig:
    """Parameters for an index of these (N, D) vectors: centred on their mean once N is large enough."""
    n, dim = int(vectors.shape[0]), int(vectors.shape[1])
    minimum = settings.FLATSITE_INDEX_CENTRE_MIN
    if minimum <= 0 or n < minimum:
        return IndexConfig(dim=dim)
    centre = vectors.mean(axis=0, dtype=np.float64)  # (D,)
    return IndexConfig(dim=dim, centre=tuple(centre.tolist()), centre_count=n)


def _recentre_due(index: VectorIndex) -> bool:
    """True when the index should get a fresh mean: first big enough, or doubled since the last mean."""
    minimum = settings.FLATSITE_INDEX_CENTRE_MIN
    if minimum <= 0:
        return False
    if index.config.centre is None:
        return len(index) >= minimum
    # Doubling keeps the total cost of re-centring linear in the collection size.
    return len(index) >= 2 * index.config.centre_count


def _from_database(encoder: str) -> VectorIndex | None:
    """A fresh index of every stored feature of the encoder, centred on their mean (None if none)."""
    ids, vectors = features_matrix(encoder)
    if len(ids) == 0:
        return None
    return build_index(ids, vectors, _config(vectors))


def _live_or_empty(store: IndexStore, encoder: str, dim: int) -> tuple[VectorIndex, bool]:
    """The live index to change and whether it had to be recovered (caller holds the lock).

    A damaged live file is replaced from the newest good version and the database.
    """
    live = _live_version(encoder)
    try:
        return store.load(live)[0], False
    except IndexMissing:
        return VectorIndex(IndexConfig(dim=dim)), False
    except IndexCorrupt:
        log.warning("live %s index v%s unreadable; recovering from the database", encoder, live)
        return _recovered(store, encoder, bad=live) or VectorIndex(IndexConfig(dim=dim)), True


def _recovered(store: IndexStore, encoder: str, *, bad: int | None) -> VectorIndex | None:
    """Newest good version reconciled with the database features, or a rebuild from them (lock held).

    None when no version is good and the database has no features either.
    """
    if bad is not None:
        # Never picked again: index_set_live refuses failed versions, and prune deletes the damaged file.
        IndexVersion.objects.filter(encoder=encoder, version=bad).update(status=IndexVersion.Status.FAILED)
    ids, vectors = features_matrix(encoder)
    failed = set(
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.FAILED).values_list(
            "version", flat=True
        )
    )
    for info in reversed(store.versions()):  # newest first
        if info.version in failed or not store.is_valid(info):
            continue
        index, _ = store.load(info.version)
        reconcile(index, (ids, vectors), check_vectors=True)
        log.warning("%s index recovered from v%d and the database", encoder, info.version)
        return index
    if len(ids) == 0:
        return None
    log.warning("%s index rebuilt from the database: no good version left", encoder)
    return build_index(ids, vectors, _config(vectors))


def index_add(
    encoder: str, ids: np.ndarray, vectors: np.ndarray, *, mark_indexed: bool = True
) -> IndexVersion:
    """Add vectors to the live index as a new version (no rebuild) and mark the photos indexed."""
    store = index_store(encoder)
    with store.lock():
        index, _recovered_now = _live_or_empty(store, encoder, int(vectors.shape[1]))
        index.add(ids, vectors)
        reason = "add"
        if _recentre_due(index):
            # The features are stored before they are indexed, so the database holds these ones too.
            index, reason = _from_database(encoder) or index, "recentre"
        if index.needs_rebuild:
            index.rebuild()
        info = store.write(index, meta={"encoder": encoder, "reason": reason})
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
        live = _live_version(encoder)
        recovered = False
        try:
            loaded: VectorIndex | None = store.load(live)[0]
        except IndexMissing:
            return None
        except IndexCorrupt:
            log.warning("live %s index v%s unreadable; recovering from the database", encoder, live)
            loaded, recovered = _recovered(store, encoder, bad=live), True
        if loaded is None:
            return None
        index = loaded
        if index.remove(np.asarray(ids, dtype=np.int64)) == 0 and not recovered:
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
        index = build_index(ids, vectors, _config(vectors))
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
        # With no features left, the dimension comes from the live index (1 only for an empty stand-in).
        index, recovered = _live_or_empty(store, encoder, int(vectors.shape[1]) if len(ids) else 1)
        if len(index) == 0 and len(ids) == 0:
            return {"added": 0, "removed": 0, "updated": 0}  # nothing to serve, nothing to write
        counts = reconcile(index, (ids, vectors))
        if _recentre_due(index) and len(ids):
            index, counts["recentred"] = build_index(ids, vectors, _config(vectors)), 1
        if counts["added"] or counts["removed"] or recovered or counts.get("recentred"):
            info = store.write(index, meta={"encoder": encoder, "reason": "reconcile"})
            _register(encoder, info, live=True)
    return counts


def index_set_live(encoder: str, version: int) -> IndexVersion:
    """Make one built version the live one (atomic and reversible); refused unless its files verify.

    Raises ValueError (nothing changed) for a missing, failed, pruned or damaged version, IndexLocked while a
    reindex holds the store (it would register its own version over this choice, or prune this one).
    """
    live_candidate(encoder, version)  # cheap refusals first: unknown, failed, already live, files gone
    store = index_store(encoder)
    with store.lock():
        info = next((i for i in store.versions() if i.version == version), None)
        if info is None or not store.is_valid(info):  # the full checksum, once per switch
            raise ValueError(f"{encoder} index v{version} cannot go live: its files are missing or damaged")
        with transaction.atomic():
            IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).update(
                status=IndexVersion.Status.RETIRED
            )
            # A plain update keeps the row's job and evaluation (update_or_create in _register would not).
            IndexVersion.objects.filter(encoder=encoder, version=version).update(
                status=IndexVersion.Status.LIVE, path=str(info.path)
            )
    return IndexVersion.objects.get(encoder=encoder, version=version)


def search_encoder_set(encoder: str, *, user: Any = None) -> SearchEncoderChoice:
    """Make search use this encoder's live index (stored in the database; every process reads it per search).

    Raises ValueError (nothing changed) when the encoder is in use already, unavailable, or has no live index
    whose files verify.
    """
    live = search_candidate(encoder).row
    store = index_store(encoder)
    info = next((i for i in store.versions() if i.version == live.version), None)
    if info is None or not store.is_valid(info):
        raise ValueError(f"{encoder}'s live index v{live.version} is damaged: rebuild it first")
    with transaction.atomic():
        return SearchEncoderChoice.objects.create(encoder=encoder, chosen_by=user)


def _live_version(encoder: str) -> int | None:
    return (
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE)
        .values_list("version", flat=True)
        .first()
    )


def index_for_search(encoder: str) -> VectorIndex | None:
    """The live index, loaded once per process and reloaded when a newer version goes live.

    A live file that fails its checksum is replaced (newest good version + the database, or a rebuild)
    and marked failed; while another process holds the reindex lock, the newest good version is served.
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
            index, _info = store.load(key[1])
        except IndexCorrupt:
            log.exception("live %s index v%s unreadable; recovering", encoder, key[1])
            found = _search_fallback(store, encoder, key)
            if found is None:
                return cached[1] if cached else None
            key, index = found
        _cache[encoder] = (key, index)
        return index


def _search_fallback(store: IndexStore, encoder: str, bad: _Key) -> tuple[_Key, VectorIndex] | None:
    try:
        with store.lock():
            if _live_version(encoder) != bad[1]:  # replaced meanwhile: load the new one next time
                return None
            index = _recovered(store, encoder, bad=bad[1])
            if index is None:
                return None
            info = store.write(index, meta={"encoder": encoder, "reason": "recover"})
            row = _register(encoder, info, live=True)
            return (row.pk, row.version, row.path), index
    except IndexLocked:
        # A reindex (maybe this very repair) is running: serve the newest good version until a new
        # version goes live (cached under the damaged row, so the next live switch reloads).
        try:
            index, _info = store.load()
        except IndexCorrupt:
            return None
        return bad, index


def indexes_reconcile() -> dict[str, dict[str, int] | str]:
    """Reconcile every encoder's live index with the database; an encoder mid-reindex is skipped."""
    encoders = (
        IndexVersion.objects.filter(status=IndexVersion.Status.LIVE)
        .values_list("encoder", flat=True)
        .distinct()
    )
    report: dict[str, dict[str, int] | str] = {}
    for encoder in sorted(set(encoders)):
        try:
            report[encoder] = index_reconcile(encoder)
        except IndexLocked:
            # The reindex holding the lock writes a version built from the database anyway.
            report[encoder] = "skipped: another reindex is running"
    return report
