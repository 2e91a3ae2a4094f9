"""Compaction: fold a segmented index's live rows into one base segment, without blocking writers.

Protocol (the caller holds the store's reindex lock only for steps 1 and 3):
1. load the live version V (a snapshot);
2. ``compact_stage``: stream V's live rows, in id order, into a staged segment (seq = V's newest seq), with
   an IVF-PQ shortlist when it is large; writers keep appending segments meanwhile;
3. ``compact_merge`` with the live version W: the new list is the base + W's segments newer than V + W's
   tombstones that V did not have (they may hit rows now in the base). If W no longer lists all of V's
   segments (a rebuild or another compaction got there first) it raises CompactionConflict and the
   staged file is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from search.ml.index.segment import Segment, SegmentMeta
from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore

CHUNK = 16_384  # rows gathered per write: (CHUNK, D) float32 is the only large temporary


class CompactionConflict(RuntimeError):
    """The live version changed under the compaction in a way it cannot merge (retry later)."""


def compact_due(index: SegmentedIndex, *, min_rows: int, fraction: float, max_segments: int) -> bool:
    """True when the deltas, tombstones or segment count make searches pay more than a compaction costs."""
    if not index.segments:
        return False
    base = index.segments[0][0].count
    budget = max(min_rows, int(fraction * base))
    return index.delta_rows() > budget or index.n_tombstones > budget or len(index.segments) > max_segments


def _live_rows(index: SegmentedIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, segment number, row) of every live row, sorted by id."""
    ids, segs, rows = [], [], []
    for s, ((_meta, seg), dead) in enumerate(zip(index.segments, index.dead_rows(), strict=True)):
        keep = np.ones(seg.count, bool)
        keep[dead] = False
        pos = np.flatnonzero(keep)
        ids.append(np.asarray(seg.ids)[pos])
        segs.append(np.full(pos.size, s, np.int64))
        rows.append(pos)
    all_ids = np.concatenate(ids) if ids else np.empty(0, np.int64)
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], _cat(segs, order), _cat(rows, order)


def _cat(parts: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)[order] if parts else np.empty(0, np.int64)


def _chunks(
    index: SegmentedIndex, ids: np.ndarray, segs: np.ndarray, rows: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for lo in range(0, ids.size, CHUNK):
        sl = slice(lo, lo + CHUNK)
        out = np.empty((ids[sl].size, index.config.dim), np.float32)  # (B, D)
        for s in np.unique(segs[sl]):
            take = segs[sl] == s
            out[take] = index.segments[int(s)][1].rows(rows[sl][take])  # rows ascending within a segment
        yield ids[sl], out


def compact_stage(store: IndexStore, snapshot: SegmentedIndex) -> tuple[Path, SegmentMeta]:
    """Write every live row of ``snapshot`` (no pending rows) as one staged base segment."""
    if snapshot.dirty:
        raise ValueError("compact a version as loaded from the store, not one with pending changes")
    ids, segs, rows = _live_rows(snapshot)
    return store.segment_stage(
        _chunks(snapshot, ids, segs, rows), ids.size, snapshot.config, seq=snapshot.max_seq
    )


def compact_merge(
    snapshot: SegmentedIndex, staged: tuple[Path, SegmentMeta], current: SegmentedIndex
) -> tuple[SegmentedIndex, list[SegmentMeta]]:
    """(index to list, the segments it keeps besides the staged base); see the module doc, step 3."""
    before = {m.name for m, _ in snapshot.segments}
    if not before <= {m.name for m, _ in current.segments} or current.config != snapshot.config:
        raise CompactionConflict("the live index changed under the compaction; it will be retried")
    later = [(m, seg) for m, seg in current.segments if m.seq > snapshot.max_seq]
    old = dict(zip(snapshot.tomb_ids.tolist(), snapshot.tomb_seqs.tolist(), strict=True))
    keep = [
        (i, s)
        for i, s in zip(current.tomb_ids.tolist(), current.tomb_seqs.tolist(), strict=True)
        if old.get(i, -1) < s
    ]
    base_meta = staged[1]
    result = SegmentedIndex(
        current.config,
        [(base_meta, Segment(staged[0])), *later],
        np.asarray([i for i, _ in keep], np.int64),
        np.asarray([s for _, s in keep], np.int64),
    )
    return result, [m for m, _ in later]
