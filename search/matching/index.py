"""Index versions: segment appends, compaction, rebuilds, the live switch, and repair from the database.

Every version is a list of immutable segments plus tombstones (search.ml.index.segments): an upload
appends one segment (cost of the batch), a removal adds tombstones, compaction (periodic, outside the
upload path) folds them into one base. Reads of the database stream in chunks (feature_reads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from search.matching.feature_reads import feature_chunks, feature_count, feature_ids, feature_mean
from search.matching.live_index import _cache, index_for_search, index_store, live_version
from search.ml.index import IndexConfig, IndexCorrupt, IndexLocked, IndexMissing, VectorIndex
from search.ml.index.compact import CompactionConflict, compact_due, compact_merge, compact_stage
from search.ml.index.reconcile import plan_reconcile
from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore, IndexVersionInfo
from search.models import IndexVersion, Photo, SearchEncoderChoice
from search.ops.selectors import live_candidate, search_candidate

__all__ = ["_cache", "index_for_search", "index_store"]  # re-exported: doors and tests import them from here
log = logging.getLogger(__name__)
_MARK_CHUNK = 5_000  # ids per UPDATE (SQLite allows 32 766 parameters)


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


def _recentre_due(index: SegmentedIndex | VectorIndex) -> bool:
    """True when the index should get a fresh mean: first big enough, or doubled since the last mean."""
    minimum = settings.FLATSITE_INDEX_CENTRE_MIN
    if minimum <= 0:
        return False
    if index.config.centre is None:
        return len(index) >= minimum
    # Doubling keeps the total cost of re-centring linear in the collection size.
    return len(index) >= 2 * index.config.centre_count


def _base_config(encoder: str, dim: int, n: int) -> IndexConfig:
    """Parameters of a fresh base: centred on the stored vectors' mean once there are enough of them."""
    minimum = settings.FLATSITE_INDEX_CENTRE_MIN
    if minimum <= 0 or n < minimum:
        return IndexConfig(dim=dim)
    centre, count = feature_mean(encoder)  # one streamed pass
    if centre is None:
        return IndexConfig(dim=dim)
    return IndexConfig(dim=dim, centre=tuple(centre.tolist()), centre_count=count)


def _prepared(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]], config: IndexConfig, limit: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks as stored (centred), at most ``limit`` rows: later arrivals are left to the reconciler."""
    shaper = VectorIndex(config)
    for ids, vecs in chunks:
        if ids.size and limit > 0:
            yield ids[:limit], shaper.prepare(vecs[:limit])
            limit -= min(limit, ids.size)


def _write_from_database(
    store: IndexStore, encoder: str, *, reason: str, live: bool = True, job_id: int | None = None
) -> IndexVersion | None:
    """A fresh one-segment version of every stored feature, streamed twice (mean, rows); None if none."""
    n = feature_count(encoder)
    first = next(feature_chunks(encoder, chunk=1), None)
    if n == 0 or first is None or first[0].size == 0:
        return None
    config = _base_config(encoder, int(first[1].shape[1]), n)
    # Rows added while this streams are reconciled later; reserve room for a few of them.
    room = n + 1024
    staged = store.segment_stage(_prepared(feature_chunks(encoder), config, room), room, config, seq=1)
    info = store.write_list(
        SegmentedIndex(config), [], [staged], {"encoder": encoder, "reason": reason}, count=staged[1].count
    )
    return _register(encoder, info, live=live, job_id=job_id)


def _write_vector_index(store: IndexStore, encoder: str, index: VectorIndex, reason: str) -> IndexVersion:
    """Persist an in-memory (legacy single-file) index as a one-segment version."""
    ids = index.ids()
    staged = store.segment_stage([(ids, index.vectors(ids))], ids.size, index.config, seq=1)
    info = store.write_list(
        SegmentedIndex(index.config),
        [],
        [staged],
        {"encoder": encoder, "reason": reason},
        count=staged[1].count,
    )
    return _register(encoder, info, live=True)


def _load_live(store: IndexStore, encoder: str, dim: int | None = None) -> SegmentedIndex:
    """The live index to change (caller holds the lock): upgraded, recovered or empty as needed.

    With no version at all: an empty index of ``dim`` (an add), or with no ``dim`` one built from the
    database (reconcile, compaction), empty when the database holds no features either.
    """
    live = live_version(encoder)
    try:
        loaded = store.load(live)[0]
    except IndexMissing:
        if dim is None:
            return _recovered(store, encoder, bad=None) or SegmentedIndex(IndexConfig(dim=1))
        return SegmentedIndex(IndexConfig(dim=dim))
    except IndexCorrupt:
        log.warning("live %s index v%s unreadable; recovering from the database", encoder, live)
        return _recovered(store, encoder, bad=live) or SegmentedIndex(IndexConfig(dim=dim or 1))
    if isinstance(loaded, VectorIndex):  # a version written before segments: convert it once
        row = _write_vector_index(store, encoder, loaded, "upgrade to segments")
        loaded = store.load(row.version)[0]
    assert isinstance(loaded, SegmentedIndex)
    return loaded


def _sync(index: SegmentedIndex | VectorIndex, encoder: str) -> dict[str, int]:
    """Make the index hold exactly the database's indexable photos (ids compared; missing vectors fetched)."""
    missing, extra = plan_reconcile(index, feature_ids(encoder))
    removed = index.remove(extra)
    for ids, vecs in feature_chunks(encoder, photo_ids=missing):
        if ids.size:
            index.add(ids, vecs)
    return {"added": int(missing.size), "removed": removed, "updated": 0}


def _recovered(store: IndexStore, encoder: str, *, bad: int | None) -> SegmentedIndex | None:
    """Newest good version synced with the database, or a rebuild from it, written live (lock held).

    None when no version is good and the database has no features either.
    """
    if bad is not None:
        # Never picked again: index_set_live refuses failed versions, and prune deletes the damaged file.
        IndexVersion.objects.filter(encoder=encoder, version=bad).update(status=IndexVersion.Status.FAILED)
    failed = set(
        IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.FAILED).values_list(
            "version", flat=True
        )
    )
    for info in reversed(store.versions()):  # newest first
        if info.version in failed or not store.is_valid(info):
            continue
        index = store.load(info.version)[0]
        _sync(index, encoder)
        log.warning("%s index recovered from v%d and the database", encoder, info.version)
        if isinstance(index, VectorIndex):
            row = _write_vector_index(store, encoder, index, "recover")
        else:
            row = _register(
                encoder, store.write(index, meta={"encoder": encoder, "reason": "recover"}), live=True
            )
        loaded = store.load(row.version)[0]
        assert isinstance(loaded, SegmentedIndex)
        return loaded
    log.warning("%s index rebuilt from the database: no good version left", encoder)
    rebuilt = _write_from_database(store, encoder, reason="recover")
    if rebuilt is None:
        return None
    loaded = store.load(rebuilt.version)[0]
    assert isinstance(loaded, SegmentedIndex)
    return loaded


def _mark_indexed(ids: np.ndarray) -> None:
    for lo in range(0, ids.size, _MARK_CHUNK):
        Photo.objects.filter(
            pk__in=ids[lo : lo + _MARK_CHUNK].tolist(), status=Photo.Status.PROCESSED
        ).update(status=Photo.Status.INDEXED)


def index_add(
    encoder: str, ids: np.ndarray, vectors: np.ndarray, *, mark_indexed: bool = True
) -> IndexVersion:
    """Append the vectors to the live index as one new segment (cost of the batch) and mark them indexed.

    A small collection that is due a new mean is re-centred here instead (a bounded cost: at most
    FLATSITE_INDEX_COMPACT_MIN_ROWS rows); a larger one is re-centred by the periodic compaction.
    """
    store = index_store(encoder)
    with store.lock():
        index = _load_live(store, encoder, int(vectors.shape[1]))
        index.add(ids, vectors)
        recentred = None
        if _recentre_due(index) and len(index) <= settings.FLATSITE_INDEX_COMPACT_MIN_ROWS:
            # The features are stored before they are indexed, so the database holds these ones too.
            recentred = _write_from_database(store, encoder, reason="recentre")
        if recentred is None:
            recentred = _register(
                encoder, store.write(index, meta={"encoder": encoder, "reason": "add"}), live=True
            )
        row = recentred
        store.prune(keep=3, protect=[v for v in [live_version(encoder)] if v is not None])
    if mark_indexed:
        _mark_indexed(np.asarray(ids, dtype=np.int64))
    return row


def index_remove(encoder: str, ids: list[int]) -> IndexVersion | None:
    """Remove photos from the live index (tombstones in a new version)."""
    store = index_store(encoder)
    with store.lock():
        if store.latest_version() is None:
            return None
        index = _load_live(store, encoder)
        if index.remove(np.asarray(ids, dtype=np.int64)) == 0:
            return None
        info = store.write(index, meta={"encoder": encoder, "reason": "remove"})
        return _register(encoder, info, live=True)


def index_rebuild(encoder: str, *, live: bool = True, job_id: int | None = None) -> IndexVersion:
    """Build a fresh version from every stored feature of the encoder (live at once unless asked not to)."""
    store = index_store(encoder)
    with store.lock():
        row = _write_from_database(store, encoder, reason="rebuild", live=live, job_id=job_id)
        if row is None:
            raise ValueError(f"no {encoder} features to index; run extraction first")
        store.prune(keep=5, protect=[v for v in [live_version(encoder)] if v is not None])
    _mark_indexed(feature_ids(encoder))
    return row


def index_reconcile(encoder: str) -> dict[str, int]:
    """Make the live index hold exactly the database's feature rows (after a crash or manual edits)."""
    store = index_store(encoder)
    with store.lock():
        if store.latest_version() is None and feature_count(encoder) == 0:
            return {"added": 0, "removed": 0, "updated": 0}  # nothing to serve, nothing to write
        index = _load_live(store, encoder)  # a damaged live version is recovered (and written) here
        counts = _sync(index, encoder)
        if index.dirty:
            info = store.write(index, meta={"encoder": encoder, "reason": "reconcile"})
            _register(encoder, info, live=True)
    return counts


def index_compact(encoder: str, *, force: bool = False) -> dict[str, Any]:
    """Fold the live index's segments and tombstones into one base (or re-centre it from the database).

    The long part runs without the reindex lock, so uploads keep appending meanwhile (compact module doc).
    """
    store = index_store(encoder)
    with store.lock():
        snapshot = _load_live(store, encoder)
        if not snapshot.segments or not (force or _compaction_due(snapshot)):
            return {"compacted": False}
        if _recentre_due(snapshot):
            row = _write_from_database(store, encoder, reason="recentre")
            store.prune(keep=3, protect=[row.version] if row else [])
            return {"compacted": True, "recentred": True, "count": row.count if row else 0}
    staged = compact_stage(store, snapshot)
    try:
        with store.lock():
            current = _load_live(store, encoder)
            merged, kept = compact_merge(snapshot, staged, current)
            info = store.write_list(
                merged, kept, [staged], {"encoder": encoder, "reason": "compact"}, count=len(merged)
            )
            row = _register(encoder, info, live=True)
            store.prune(keep=3, protect=[row.version])
    finally:
        staged[0].unlink(missing_ok=True)
    return {"compacted": True, "count": row.count, "segments": len(kept) + 1, "version": row.version}


def _compaction_due(index: SegmentedIndex) -> bool:
    return _recentre_due(index) or compact_due(
        index,
        min_rows=settings.FLATSITE_INDEX_COMPACT_MIN_ROWS,
        fraction=settings.FLATSITE_INDEX_COMPACT_FRACTION,
        max_segments=settings.FLATSITE_INDEX_MAX_SEGMENTS,
    )


def indexes_compact() -> dict[str, dict[str, Any] | str]:
    """Compact every encoder's live index that needs it; one busy with another writer is skipped."""
    report: dict[str, dict[str, Any] | str] = {}
    for encoder in _live_encoders():
        try:
            report[encoder] = index_compact(encoder)
        except (IndexLocked, CompactionConflict) as exc:
            report[encoder] = f"skipped: {exc}"
    return report


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


def _live_encoders() -> list[str]:
    encoders = (
        IndexVersion.objects.filter(status=IndexVersion.Status.LIVE)
        .values_list("encoder", flat=True)
        .distinct()
    )
    return sorted(set(encoders))


def indexes_reconcile() -> dict[str, dict[str, int] | str]:
    """Reconcile every encoder's live index with the database; an encoder mid-reindex is skipped."""
    report: dict[str, dict[str, int] | str] = {}
    for encoder in _live_encoders():
        try:
            report[encoder] = index_reconcile(encoder)
        except IndexLocked:
            # The reindex holding the lock writes a version built from the database anyway.
            report[encoder] = "skipped: another reindex is running"
    return report
