"""The small interface every vector store implements: embedded FAISS segments or a scale-out engine.

Vectors are L2-normalised float32 (N, dim) under int64 ids >= 0 (database primary keys); search is by
inner product, best first, padded with -inf / -1. ``MemoryBackend`` adapts the in-memory ``VectorIndex``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from search.ml.index.config import IndexConfig, as_ids, as_matrix
from search.ml.index.vector import VectorIndex


@runtime_checkable
class VectorBackend(Protocol):
    """Add-or-replace, remove, top-k inner-product search and read-back of vectors by id."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace (N, dim) L2-normalised vectors under (N,) int64 ids."""

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones ignored); returns how many were removed."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores (Q, k) float32 and ids (Q, k) int64, best first, padded with -inf / -1."""

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored (N, dim) vectors of ``ids``; KeyError if one is unknown."""

    def __len__(self) -> int:
        """Number of live vectors."""

    def flush(self) -> None:
        """Make every write so far durable and visible to searches."""


def check_unit_rows(
    ids: np.ndarray, vectors: np.ndarray, dim: int, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (ids, vectors) for ``add``: ValueError on shape, NaN, negative ids or non-unit rows."""
    ids = as_ids(ids)
    vecs = as_matrix(vectors, dim, "vectors")
    if vecs.shape[0] != ids.size:
        raise ValueError(f"{ids.size} ids but {vecs.shape[0]} vectors")
    if ids.size and np.abs(np.linalg.norm(vecs, axis=1) - 1.0).max() > tolerance:
        raise ValueError("vectors must be L2-normalised (inner product == cosine)")
    return ids, vecs


class MemoryBackend:
    """``VectorBackend`` over one in-memory exact ``VectorIndex`` (tests, small collections)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = VectorIndex(IndexConfig(dim=dim), "flat")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors."""
        self._index.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were live."""
        return self._index.remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by inner product."""
        return self._index.search(queries, k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors; KeyError on unknown ids."""
        return self._index.vectors(ids)

    def __len__(self) -> int:
        return len(self._index)

    def flush(self) -> None:
        """Nothing to do: writes are visible at once and live only in memory."""
