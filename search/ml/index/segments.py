"""An index made of immutable segments plus tombstones: adding costs the batch, not the collection.

A version's file (``vNNNNNNNN.idx`` in IndexStore) is then a *segment list*: ``FSSEGLS1`` magic, u64 header
length, JSON header (config, segments with their seq, size and sha256), then the tombstones as two int64
arrays (ids ascending, seqs). Rules:
- a segment's rows are (id, vector) with ascending unique ids; a larger ``seq`` is newer;
- a tombstone (id, s) kills the id's rows in every segment whose seq <= s; re-adding the id later puts it
  in a newer segment, which the tombstone does not reach. So each id has at most one live row.
- ``add``/``remove`` on a loaded index only change it in memory (a pending flat delta and new tombstones);
  ``IndexStore.write`` then writes the pending rows as ONE new segment and a new list: O(batch + segments
  + tombstones) bytes, whatever the collection size. Compaction (search.ml.index.compact) folds everything
  back into one base segment and drops the tombstones.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.ml.index.config import IndexConfig, IndexCorrupt, as_ids, as_matrix
from search.ml.index.segment import Segment, SegmentMeta, _top
from search.ml.index.vector import VectorIndex

LIST_MAGIC = b"FSSEGLS1"
_PAD = np.float32(-np.inf)


class SegmentedIndex:
    """Read interface of VectorIndex over segments + tombstones, with in-memory pending changes."""

    kind = "segments"
    needs_rebuild = False  # segments are never rebuilt in place: compaction writes a new base

    def __init__(
        self,
        config: IndexConfig,
        segments: Sequence[tuple[SegmentMeta, Segment]] = (),
        tomb_ids: np.ndarray | None = None,
        tomb_seqs: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.segments = list(segments)  # oldest first
        for meta, seg in self.segments:
            if seg.config.dim != config.dim or seg.config.centre != config.centre:
                raise IndexCorrupt(f"segment {meta.name} was built with another centre or dimension")
        self.tomb_ids = np.empty(0, np.int64) if tomb_ids is None else np.asarray(tomb_ids, np.int64)
        self.tomb_seqs = np.empty(0, np.int64) if tomb_seqs is None else np.asarray(tomb_seqs, np.int64)
        self.pending = VectorIndex(config, "flat")  # rows added since load (prepared vectors)
        self._dead: list[np.ndarray] | None = None  # per segment: sorted dead row positions

    # ---- bookkeeping ---------------------------------------------------------------------------
    @property
    def max_seq(self) -> int:
        """Seq of the newest segment (0 when there is none)."""
        return max((m.seq for m, _ in self.segments), default=0)

    @property
    def dirty(self) -> bool:
        """True when there are pending rows or tombstones not yet written."""
        return len(self.pending) > 0 or self._tombs_changed

    _tombs_changed = False

    def dead_rows(self) -> list[np.ndarray]:
        """Per segment, the sorted row positions its tombstones kill (computed once per change)."""
        if self._dead is None:
            dead = []
            for meta, seg in self.segments:
                hits = self.tomb_ids[self.tomb_seqs >= meta.seq]
                pos, found = seg.positions(hits)
                dead.append(np.unique(pos[found]))
            self._dead = dead
        return self._dead

    def __len__(self) -> int:
        dead = sum(int(d.size) for d in self.dead_rows())
        return sum(m.count for m, _ in self.segments) - dead + len(self.pending)

    def __repr__(self) -> str:
        return (
            f"SegmentedIndex(n={len(self)}, segments={len(self.segments)}, tombstones={self.tomb_ids.size})"
        )

    @property
    def n_tombstones(self) -> int:
        """Tombstones recorded since the last compaction."""
        return int(self.tomb_ids.size)

    def delta_rows(self) -> int:
        """Rows outside the base (oldest) segment: what an exact scan pays for until compaction."""
        return sum(m.count for m, _ in self.segments[1:]) + len(self.pending)

    def nbytes(self) -> int:
        """Bytes held privately by this process (shortlist codes, bookkeeping), not the mapped floats."""
        own = sum(seg.nbytes_resident() for _, seg in self.segments)
        return own + self.pending.nbytes() + self.tomb_ids.nbytes * 2

    # ---- reads ---------------------------------------------------------------------------------
    def _locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: index of the segment holding its live row (-1 none) and the row position."""
        where = np.full(ids.shape, -1, np.int64)
        rows = np.zeros(ids.shape, np.int64)
        for s, ((_meta, seg), dead) in enumerate(zip(self.segments, self.dead_rows(), strict=True)):
            pos, found = seg.positions(ids)
            if dead.size:
                found &= ~np.isin(pos, dead)
            where[found], rows[found] = s, pos[found]
        return where, rows

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are live."""
        ids = np.asarray(ids, dtype=np.int64)
        return (self._locate(ids)[0] >= 0) | self.pending.contains(ids)

    def __contains__(self, id_: object) -> bool:
        if not isinstance(id_, int | np.integer):
            return False
        return bool(self.contains(np.array([id_], dtype=np.int64))[0])

    def ids(self) -> np.ndarray:
        """Live ids, ascending."""
        pairs = zip(self.segments, self.dead_rows(), strict=True)
        parts = [np.delete(np.asarray(seg.ids), dead) for (_, seg), dead in pairs]
        return np.sort(np.concatenate([*parts, self.pending.ids()]))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored (prepared) vectors of live ``ids`` (N, dim); KeyError if one is not live."""
        ids = as_ids(ids)
        out = np.empty((ids.size, self.config.dim), np.float32)
        in_pending = self.pending.contains(ids)
        if in_pending.any():
            out[in_pending] = self.pending.vectors(ids[in_pending])
        where, rows = self._locate(ids)
        missing = (where < 0) & ~in_pending
        if missing.any():
            raise KeyError(f"ids not in index: {ids[missing][:10].tolist()}")
        for s, (_meta, seg) in enumerate(self.segments):
            take = (where == s) & ~in_pending
            if take.any():
                order = np.argsort(rows[take])  # read the mapped file in ascending order
                sel = np.flatnonzero(take)[order]
                out[sel] = seg.rows(rows[take][order])
        return out

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        """(N, dim) vectors as stored and searched (centred and re-normalised when the config says so)."""
        return self.pending.prepare(vectors)

    def search(
        self, queries: np.ndarray, k: int, *, prepared: bool = False, rescore: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product over every segment and the pending rows: (Q, k) scores and ids.

        rescore: shortlist rows re-scored exactly per query in shortlisted segments (None: the config's).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = as_matrix(queries, self.config.dim, "queries", check_finite=False)  # (Q, d)
        if not prepared:
            q = self.prepare(q)
        scores = [np.full((q.shape[0], 0), _PAD, np.float32)]
        ids = [np.empty((q.shape[0], 0), np.int64)]
        for (_meta, seg), dead in zip(self.segments, self.dead_rows(), strict=True):
            if seg.count - dead.size <= 0:
                continue
            s, rows = seg.search(q, k, dead, rescore)  # (Q, k) row positions
            scores.append(s)
            ids.append(np.where(rows >= 0, np.asarray(seg.ids)[np.maximum(rows, 0)], -1))
        if len(self.pending):
            s, i = self.pending.search(q, k, prepared=True)
            scores.append(s)
            ids.append(i)
        top_s, top_i = _top(np.hstack(scores), np.hstack(ids), k)
        if top_s.shape[1] < k:
            pad = k - top_s.shape[1]
            top_s = np.hstack([top_s, np.full((q.shape[0], pad), _PAD, np.float32)])
            top_i = np.hstack([top_i, np.full((q.shape[0], pad), -1, np.int64)])
        top_i = np.where(np.isfinite(top_s), top_i, -1)
        return top_s.astype(np.float32, copy=False), top_i

    # ---- pending changes -----------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace (N, dim) L2-normalised vectors; replaced rows in segments get a tombstone."""
        ids = as_ids(ids)
        self._kill(ids[self._locate(ids)[0] >= 0])
        self.pending.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Remove live ``ids`` (unknown ones are ignored); returns how many were removed."""
        ids = np.unique(as_ids(ids))
        in_segments = ids[self._locate(ids)[0] >= 0]
        removed = self.pending.remove(ids) + int(in_segments.size)
        self._kill(in_segments)
        return removed

    def rebuild(self, kind: str | None = None) -> None:
        """Nothing to do: a segmented index is compacted into a new base instead (see compact)."""

    def _kill(self, ids: np.ndarray) -> None:
        if ids.size == 0:
            return
        merged = dict(zip(self.tomb_ids.tolist(), self.tomb_seqs.tolist(), strict=True))
        for i in ids.tolist():
            merged[i] = self.max_seq  # every row written so far; newer segments are not reached
        order = sorted(merged)
        self.tomb_ids = np.asarray(order, np.int64)
        self.tomb_seqs = np.asarray([merged[i] for i in order], np.int64)
        self._tombs_changed, self._dead = True, None

    # ---- the list file -------------------------------------------------------------------------
    def list_bytes(self, metas: Sequence[SegmentMeta]) -> bytes:
        """The version file naming ``metas`` with this index's tombstones."""
        header = {
            "format": 1,
            "config": self.config.to_dict(),
            "segments": [m.to_dict() for m in metas],
            "n_tombstones": int(self.tomb_ids.size),
        }
        raw = json.dumps(header, sort_keys=True).encode()
        tombs = self.tomb_ids.astype("<i8").tobytes() + self.tomb_seqs.astype("<i8").tobytes()
        return LIST_MAGIC + struct.pack("<Q", len(raw)) + raw + tombs


def list_parse(data: bytes) -> tuple[IndexConfig, list[SegmentMeta], np.ndarray, np.ndarray]:
    """(config, segment metas oldest first, tombstone ids, tombstone seqs) of a list file's bytes."""
    if data[:8] != LIST_MAGIC or len(data) < 16:
        raise IndexCorrupt("not a segment list (bad magic)")
    try:
        n = struct.unpack("<Q", data[8:16])[0]
        header: dict[str, Any] = json.loads(data[16 : 16 + n])
        config = IndexConfig.from_dict(header["config"])
        metas = sorted((SegmentMeta.from_dict(d) for d in header["segments"]), key=lambda m: m.seq)
        t = int(header["n_tombstones"])
        tail = data[16 + n :]
        if len(tail) != 16 * t:
            raise ValueError("tombstone arrays do not match their count")
        ids = np.frombuffer(tail[: 8 * t], "<i8").astype(np.int64)
        seqs = np.frombuffer(tail[8 * t :], "<i8").astype(np.int64)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise IndexCorrupt(f"unreadable segment list: {exc}") from exc
    return config, metas, ids, seqs


def is_list(data: bytes) -> bool:
    """True when a version file's first bytes are a segment list's magic."""
    return data[:8] == LIST_MAGIC
