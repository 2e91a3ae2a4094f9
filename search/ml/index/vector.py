"""FAISS inner-product vector index keyed by stable int64 ids (database primary keys).

Design (why it looks like this):
- FAISS positions ("labels") are append-only; the id <-> label mapping lives in numpy arrays next to the
  FAISS index, so replace and remove work the same way for every kind and ids can be any int64 >= 0.
- kind "flat" (exact ``IndexFlatIP``) removes vectors physically (``remove_ids`` keeps the order of the
  survivors, so labels are renumbered with a cumulative sum).
- kind "hnsw" (``IndexHNSWFlat``) cannot delete graph nodes, so removed labels become tombstones that are
  filtered *inside* FAISS with an ``IDSelectorBitmap`` (no over-fetch guesswork, still k results when k live
  ones are reachable) and, as defence in depth, again after the search. When tombstones exceed
  ``tombstone_rebuild_fraction`` the index is rebuilt from the stored vectors.

Memory per vector (d = dim, float32):
- flat: 4*d (FAISS) + 8 (label -> id) + 16 (sorted id/label arrays) + 8 (search lookup copy) = 4*d + 32 bytes
  (d=256: 1056 B, d=1280: 5152 B).
- hnsw, M = hnsw_m: 4*d + ~(2*M*4 * 1.03 + 4 + 8) graph + 32 bookkeeping = 4*d + ~300 bytes for M=32
  (d=256: ~1.33 kB, d=1280: ~5.4 kB); tombstones keep their full size (plus 1 bit each) until the rebuild.
Measured numbers are in bench/README.md ("Index scale").

Concurrency: one writer at a time; concurrent searches are fine while nobody mutates the object.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from typing import Any

import faiss
import numpy as np

from search.ml.index.config import (
    KINDS,
    ByteSink,
    ByteSource,
    IndexConfig,
    IndexCorrupt,
    as_ids,
    as_matrix,
    centre_unit,
)

# The stubs bundled with faiss-cpu lack HNSW search parameters, IO callbacks and SWIG attribute slots.
_faiss: Any = faiss


FORMAT_VERSION = 1
_MAGIC = b"FSVIDX01"
_PAD_SCORE = np.float32(-np.inf)


def _new_faiss(config: IndexConfig, kind: str) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(config.dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(config.dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        index.hnsw.efSearch = config.ef_search
        return index
    raise ValueError(f"unknown index kind {kind!r}; expected one of {KINDS}")


def _is_kind(index: Any, kind: str) -> bool:
    expected = faiss.IndexFlatIP if kind == "flat" else faiss.IndexHNSWFlat
    return isinstance(index, expected) and index.metric_type == faiss.METRIC_INNER_PRODUCT


def _keep_last(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop duplicate ids in one batch; the last occurrence wins, as if added one by one."""
    _, first_in_reversed = np.unique(ids[::-1], return_index=True)
    keep = len(ids) - 1 - first_in_reversed
    return ids[keep], vectors[keep]


class VectorIndex:
    """Inner-product index over L2-normalised float32 vectors with int64 ids (see module doc)."""

    def __init__(self, config: IndexConfig, kind: str = "flat") -> None:
        self.config = config
        self.kind = kind
        self._faiss: Any = _new_faiss(config, kind)  # faiss.Index; Any because the stubs lack .hnsw
        self._label_ids = np.empty(0, dtype=np.int64)  # (ntotal,) label -> id, -1 = tombstone
        self._sorted_ids = np.empty(0, dtype=np.int64)  # (n_live,) ascending
        self._sorted_labels = np.empty(0, dtype=np.int64)  # (n_live,) label of _sorted_ids[i]
        self._n_dead = 0
        self._bitmap: np.ndarray | None = None  # packed alive bitmap; FAISS keeps a raw pointer to it
        self._selector: faiss.IDSelector | None = None
        self._lookup: np.ndarray | None = None  # _label_ids + [-1], so FAISS's -1 padding maps to -1

    # ---- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._sorted_ids.size)

    def __contains__(self, id_: object) -> bool:
        if not isinstance(id_, int | np.integer):
            return False
        return bool(self.contains(np.array([id_], dtype=np.int64))[0])

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, n={len(self)}, dim={self.config.dim}, dead={self._n_dead})"

    def ids(self) -> np.ndarray:
        """Live ids, ascending int64 copy."""
        return self._sorted_ids.copy()

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are live."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._sorted_ids.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        pos = np.searchsorted(self._sorted_ids, ids)
        found = self._sorted_ids[np.minimum(pos, self._sorted_ids.size - 1)]
        return (pos < self._sorted_ids.size) & (found == ids)

    @property
    def n_tombstones(self) -> int:
        """Dead HNSW labels still occupying memory (always 0 for flat)."""
        return self._n_dead

    @property
    def needs_rebuild(self) -> bool:
        """True when incremental growth/shrinkage left the index on the wrong kind for its size."""
        n = len(self)
        if self.kind == "flat":
            return n >= self.config.exact_threshold
        return n < self.config.exact_threshold // 2  # hysteresis: no flip-flopping at the threshold

    def set_ef_search(self, ef_search: int) -> None:
        """Change the HNSW search breadth at run time (recall/latency trade-off; no effect on flat)."""
        self.config = replace(self.config, ef_search=ef_search)
        if self.kind == "hnsw":
            self._faiss.hnsw.efSearch = ef_search

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored (prepared: centred when config.centre is set) vectors of live ``ids`` (N, dim).

        KeyError if one is not live.
        """
        ids = as_ids(ids)
        mask = self.contains(ids)
        if not mask.all():
            raise KeyError(f"ids not in index: {ids[~mask][:10].tolist()}")
        labels = self._sorted_labels[np.searchsorted(self._sorted_ids, ids)]
        if labels.size == 0:
            return np.empty((0, self.config.dim), dtype=np.float32)
        return np.asarray(self._faiss.reconstruct_batch(labels), dtype=np.float32)

    def nbytes(self) -> int:
        """Approximate resident bytes of the FAISS structures plus id bookkeeping."""
        total = int(self._faiss.ntotal) * self.config.dim * 4
        if self.kind == "hnsw":
            hnsw = self._faiss.hnsw
            total += hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8
        caches = sum(a.nbytes for a in (self._lookup, self._bitmap) if a is not None)
        return total + self._label_ids.nbytes + self._sorted_ids.nbytes + self._sorted_labels.nbytes + caches

    def search(
        self, queries: np.ndarray, k: int, *, prepared: bool = False, rescore: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: scores (Q, k) float32 and ids (Q, k) int64, padded with -inf / -1.

        rescore: accepted for the segments' interface; exact and HNSW indexes have no shortlist to re-score.

        prepared=True: the queries are stored vectors (``vectors()``), already centred.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        # Queries skip the NaN check (hot path): a NaN query gets arbitrary results, never a crash.
        q = as_matrix(queries, self.config.dim, "queries", check_finite=False)  # (Q, d)
        if not prepared:
            q = self.prepare(q)
        if q.shape[0] == 0 or len(self) == 0:
            return np.full((q.shape[0], k), _PAD_SCORE, np.float32), np.full((q.shape[0], k), -1, np.int64)
        params = self._search_params(k)
        if params is None:
            scores, labels = self._faiss.search(q, k)
        else:
            scores, labels = self._faiss.search(q, k, params=params)
        ids = self._lookup_table()[labels]  # (Q, k); label -1 hits the trailing -1 sentinel
        # FAISS pads at row ends; a -1 mid-row can only be a tombstone, which exists only if _n_dead > 0.
        if self._n_dead or ids[:, -1].min() < 0:  # move padding to the end of each row
            ok = ids >= 0
            order = np.argsort(~ok, axis=1, kind="stable")
            ids, scores, ok = (np.take_along_axis(a, order, axis=1) for a in (ids, scores, ok))
            scores[~ok] = _PAD_SCORE
            ids[~ok] = -1
        return scores.astype(np.float32, copy=False), ids

    def _search_params(self, k: int) -> faiss.SearchParameters | None:
        if self.kind != "hnsw" or (self._n_dead == 0 and k <= self.config.ef_search):
            return None  # fast path: efSearch is already set on the index
        params = _faiss.SearchParametersHNSW()
        params.efSearch = max(self.config.ef_search, k)
        if self._n_dead:
            params.sel = params.referenced_sel = self._alive_selector()  # keep the selector alive too
        return params

    def _lookup_table(self) -> np.ndarray:
        lookup = self._lookup
        if lookup is None:  # concurrent searches may both build it; each uses its own complete copy
            lookup = self._lookup = np.append(self._label_ids, np.int64(-1))
        return lookup

    def _alive_selector(self) -> faiss.IDSelector:
        selector = self._selector
        if selector is None:
            bitmap = np.packbits(self._label_ids >= 0, bitorder="little")  # FAISS reads bit i&7 of byte i>>3
            selector = _faiss.IDSelectorBitmap(self._label_ids.size, faiss.swig_ptr(bitmap))
            selector.referenced_bitmap = bitmap  # FAISS holds a raw pointer: tie the array's lifetime to it
            self._bitmap, self._selector = bitmap, selector
        return selector

    # ---- mutations -----------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (N, dim), L2-normalised, under ids (N,)."""
        ids = as_ids(ids)
        vecs = as_matrix(vectors, self.config.dim, "vectors")  # (N, d)
        if vecs.shape[0] != ids.size:
            raise ValueError(f"{ids.size} ids but {vecs.shape[0]} vectors")
        norms = np.linalg.norm(vecs, axis=1)
        if ids.size and np.abs(norms - 1.0).max() > self.config.norm_tolerance:
            raise ValueError("vectors must be L2-normalised (inner product == cosine)")
        self._append(ids, self.prepare(vecs))

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        """(N, dim) vectors as stored and searched: centred on config.centre and re-normalised if set."""
        centre = self.config.centre_array
        if centre is None:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return np.ascontiguousarray(centre_unit(np.asarray(vectors, dtype=np.float32), centre))

    def _append(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add prepared (N, dim) vectors under ids (N,), replacing live ones."""
        if ids.size == 0:
            return
        ids, vecs = _keep_last(ids, vecs)
        self._drop(ids[self.contains(ids)])  # replace = remove old copy, append new one
        start = int(self._faiss.ntotal)
        self._faiss.add(vecs)
        labels = np.arange(start, start + ids.size, dtype=np.int64)
        self._label_ids = np.concatenate([self._label_ids, ids])
        pos = np.searchsorted(self._sorted_ids, ids)  # ids are sorted by _keep_last (np.unique)
        self._sorted_ids = np.insert(self._sorted_ids, pos, ids)
        self._sorted_labels = np.insert(self._sorted_labels, pos, labels)
        self._invalidate_caches()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        ids = np.unique(as_ids(ids))
        present = ids[self.contains(ids)]
        self._drop(present)
        if self._n_dead and self._n_dead > self.config.tombstone_rebuild_fraction * self._faiss.ntotal:
            self.rebuild(kind=self.kind)
        return int(present.size)

    def rebuild(self, kind: str | None = None) -> None:
        """Rebuild from the stored vectors, dropping tombstones; ``kind=None`` re-picks it by size."""
        vecs = self.vectors(self._sorted_ids)  # (n_live, d)
        ids = self._sorted_ids
        fresh = VectorIndex(self.config, kind or self.config.kind_for(ids.size))
        fresh._append(ids, vecs)  # already prepared: centring twice would move them
        self.__dict__.update(fresh.__dict__)

    def _drop(self, ids: np.ndarray) -> None:
        """Remove live ``ids`` (unique, all present)."""
        if ids.size == 0:
            return
        pos = np.searchsorted(self._sorted_ids, ids)
        labels = self._sorted_labels[pos]
        self._sorted_ids = np.delete(self._sorted_ids, pos)
        self._sorted_labels = np.delete(self._sorted_labels, pos)
        if self.kind == "flat":
            self._faiss.remove_ids(faiss.IDSelectorBatch(labels))
            keep = np.ones(self._label_ids.size, dtype=bool)
            keep[labels] = False
            new_label = np.cumsum(keep) - 1  # survivors keep their order, so labels shift down
            self._label_ids = self._label_ids[keep]
            self._sorted_labels = new_label[self._sorted_labels]
        else:
            self._label_ids[labels] = -1
            self._n_dead += int(labels.size)
        self._invalidate_caches()

    def _invalidate_caches(self) -> None:
        self._selector = None
        self._bitmap = None
        self._lookup = None

    # ---- serialisation -------------------------------------------------------------------------
    def save_to(self, sink: ByteSink) -> None:
        """Stream the index: magic, header length, JSON header, label->id array, FAISS bytes."""
        header = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "config": self.config.to_dict(),
            "n_labels": int(self._label_ids.size),
        }
        raw = json.dumps(header, sort_keys=True).encode()
        sink.write(_MAGIC + struct.pack("<Q", len(raw)) + raw)
        sink.write(self._label_ids.astype("<i8", copy=False).tobytes())
        writer = _faiss.PyCallbackIOWriter(sink.write)
        faiss.write_index(self._faiss, writer)
        del writer  # flushes the writer's buffer into sink

    @classmethod
    def load_from(cls, source: ByteSource) -> VectorIndex:
        """Inverse of ``save_to``; raises IndexCorrupt on any inconsistency."""
        head = source.read(16)
        if len(head) != 16 or head[:8] != _MAGIC:
            raise IndexCorrupt("not a flatsite vector index (bad magic)")
        try:
            header = json.loads(source.read(struct.unpack("<Q", head[8:])[0]))
            config = IndexConfig.from_dict(header["config"])
            index = cls(config, header["kind"])
            n = int(header["n_labels"])
            raw_labels = source.read(8 * n)
            if len(raw_labels) != 8 * n:
                raise IndexCorrupt("truncated label table")
            index._faiss = faiss.read_index(_faiss.PyCallbackIOReader(source.read))
        except (ValueError, KeyError, TypeError, RuntimeError, struct.error) as exc:
            raise IndexCorrupt(f"unreadable index: {exc}") from exc
        index._restore(np.frombuffer(raw_labels, dtype="<i8").astype(np.int64))
        return index

    def _restore(self, label_ids: np.ndarray) -> None:
        if not _is_kind(self._faiss, self.kind):
            raise IndexCorrupt(
                f"FAISS index type {type(self._faiss).__name__} does not match kind {self.kind}"
            )
        if self._faiss.ntotal != label_ids.size or self._faiss.d != self.config.dim:
            raise IndexCorrupt("FAISS index does not match its label table")
        if self.kind == "hnsw":
            self._faiss.hnsw.efSearch = self.config.ef_search
        live = np.flatnonzero(label_ids >= 0)
        order = np.argsort(label_ids[live], kind="stable")
        self._sorted_labels = live[order].astype(np.int64)
        self._sorted_ids = label_ids[self._sorted_labels]
        if self._sorted_ids.size > 1 and (np.diff(self._sorted_ids) == 0).any():
            raise IndexCorrupt("duplicate ids in label table")
        self._label_ids = label_ids
        self._n_dead = int(label_ids.size - live.size)


def build_index(ids: np.ndarray, vectors: np.ndarray, config: IndexConfig) -> VectorIndex:
    """Build a fresh index, exact below ``config.exact_threshold`` vectors and HNSW above."""
    index = VectorIndex(config, config.kind_for(np.unique(as_ids(ids)).size))
    index.add(ids, vectors)
    return index
