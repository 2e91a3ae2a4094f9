"""Vector index configuration, errors and input checks (shared by index, index_store, index_reconcile)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from search.ml.config import config_from_dict, config_to_dict

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


class SearchableIndex(Protocol):
    """What search, re-ranking and the reconciler need of an index (VectorIndex and SegmentedIndex)."""

    @property
    def config(self) -> IndexConfig: ...

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def contains(self, ids: np.ndarray) -> np.ndarray: ...

    def vectors(self, ids: np.ndarray) -> np.ndarray: ...

    def prepare(self, vectors: np.ndarray) -> np.ndarray: ...

    def search(
        self, queries: np.ndarray, k: int, *, prepared: bool = False, rescore: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class IndexConfig:
    """Index parameters; stored in every index file header (``to_dict`` / ``from_dict``)."""

    dim: int
    exact_threshold: int = 50_000  # n < threshold: exact flat; n >= threshold: HNSW (see bench/README.md)
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    tombstone_rebuild_fraction: float = 0.2  # hnsw: rebuild once this share of labels is dead
    # Segments (search.ml.index.segments): a base segment of exact_threshold rows or more gets an IVF-PQ
    # shortlist probed over `nprobe` lists; the best `rescore` codes are re-scored with the stored floats.
    nprobe: int = 256  # recall@10 0.975 at 1M rows (1024 lists), 5 ms a query: bench/README.md, "Index scale"
    rescore: int = 1024  # real photos among 100k synthetic ones: 512 gave recall@10 0.84 (bench.app_scale)
    norm_tolerance: float = 1e-3  # |‖v‖ - 1| allowed for added vectors
    # Collection mean subtracted from every vector (stored and query) before re-normalising, or None.
    # Raw CNN cosines are compressed (every indoor photo looks alike); centring spreads them out
    # (bench/README.md, "Same room"). centre_count: how many vectors the mean was computed from.
    centre: tuple[float, ...] | None = None
    centre_count: int = 0

    def __post_init__(self) -> None:
        if (
            self.dim < 1
            or self.hnsw_m < 2
            or self.ef_construction < 1
            or self.ef_search < 1
            or min(self.nprobe, self.rescore) < 1
        ):
            raise ValueError(f"invalid IndexConfig: {self.dim=}, {self.hnsw_m=}")
        if self.exact_threshold < 0 or not 0.0 < self.tombstone_rebuild_fraction <= 1.0:
            raise ValueError(f"invalid IndexConfig: {self.exact_threshold=}")
        if self.centre is not None:
            centre = tuple(float(v) for v in self.centre)  # JSON gives a list
            if len(centre) != self.dim or not np.isfinite(centre).all():
                raise ValueError(f"index centre must be {self.dim} finite numbers, got {len(centre)}")
            object.__setattr__(self, "centre", centre)

    @property
    def centre_array(self) -> np.ndarray | None:
        """The centre as a (dim,) float32 array, or None when vectors are not centred."""
        return None if self.centre is None else np.asarray(self.centre, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (search.ml.config convention)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        """Build from ``to_dict`` output; unknown keys are refused (search.ml.config)."""
        return config_from_dict(cls, data)

    def kind_for(self, n: int) -> str:
        """Kind ``build_index`` picks for ``n`` vectors."""
        return "flat" if n < self.exact_threshold else "hnsw"


def centre_unit(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(…, D) embeddings minus the mean, rescaled to unit length."""
    if x.shape[-1] != mean.shape[-1]:
        raise ValueError(f"embedding dim {x.shape[-1]} does not match the mean's {mean.shape[-1]}")
    v = x.astype(np.float32) - mean
    return np.asarray(v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12), dtype=np.float32)


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
