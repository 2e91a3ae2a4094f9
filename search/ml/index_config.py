"""Vector index configuration, errors and input checks (shared by index, index_store, index_reconcile)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

KINDS = ("flat", "hnsw")


class IndexCorrupt(RuntimeError):
    """A stored index could not be verified or parsed."""


class IndexMissing(IndexCorrupt):
    """The store holds no version at all (build one from the database)."""


class IndexLocked(RuntimeError):
    """Another holder owns the store's reindex lock."""


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class ByteSource(Protocol):
    def read(self, n: int, /) -> bytes: ...


@dataclass(frozen=True)
class IndexConfig:
    """Index parameters; serialisable with ``dataclasses.asdict``."""

    dim: int
    exact_threshold: int = 50_000  # n < threshold: exact flat; n >= threshold: HNSW (see bench/README.md)
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    tombstone_rebuild_fraction: float = 0.2  # hnsw: rebuild once this share of labels is dead
    norm_tolerance: float = 1e-3  # |‖v‖ - 1| allowed for added vectors

    def __post_init__(self) -> None:
        if self.dim < 1 or self.hnsw_m < 2 or self.ef_construction < 1 or self.ef_search < 1:
            raise ValueError(f"invalid IndexConfig: {self}")
        if self.exact_threshold < 0 or not 0.0 < self.tombstone_rebuild_fraction <= 1.0:
            raise ValueError(f"invalid IndexConfig: {self}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        """Build from ``asdict`` output, ignoring unknown keys (forward compatible files)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def kind_for(self, n: int) -> str:
        """Kind ``build_index`` picks for ``n`` vectors."""
        return "flat" if n < self.exact_threshold else "hnsw"


def as_ids(ids: np.ndarray) -> np.ndarray:
    """Validated (N,) int64 ids >= 0."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError("ids must be >= 0 (-1 is the padding value)")
    return arr


def as_matrix(x: np.ndarray, dim: int, what: str, check_finite: bool = True) -> np.ndarray:
    """Validated C-contiguous (N, dim) float32 matrix."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (N, {dim}), got {arr.shape}")
    if check_finite and not np.isfinite(arr.sum(dtype=np.float64)):  # NaN/inf propagate into the sum
        raise ValueError(f"{what} contain NaN or inf")
    return arr
