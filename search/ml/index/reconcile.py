"""Consistency check between a VectorIndex and the database rows it mirrors (repairs drift after a crash)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from search.ml.index.config import SearchableIndex, as_ids
from search.ml.index.vector import VectorIndex


def plan_reconcile(index: SearchableIndex, live_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(missing, extra): live ids absent from the index, and index ids no longer live."""
    live_ids = np.unique(as_ids(live_ids))
    return live_ids[~index.contains(live_ids)], np.setdiff1d(index.ids(), live_ids, assume_unique=True)


def reconcile(
    index: VectorIndex,
    live: Mapping[int, np.ndarray] | tuple[np.ndarray, np.ndarray],
    check_vectors: bool = False,
    atol: float = 1e-4,
) -> dict[str, int]:
    """Make index ids equal the live ids; a Mapping is only read for missing (or, checked, common) ids."""
    if isinstance(live, tuple):
        live_ids, live_vecs = as_ids(live[0]), np.asarray(live[1])
        lookup: Mapping[int, np.ndarray] = dict(zip(live_ids.tolist(), live_vecs, strict=True))
    else:
        live_ids, lookup = np.fromiter(live.keys(), dtype=np.int64, count=len(live)), live
    missing, extra = plan_reconcile(index, live_ids)
    removed = index.remove(extra)
    updated = 0
    if check_vectors:
        common = np.setdiff1d(np.unique(live_ids), missing, assume_unique=True)
        want = _stack(lookup, common, index.config.dim)  # (n_common, d)
        # Stored vectors are prepared (maybe centred): compare like with like.
        changed = np.abs(index.vectors(common) - index.prepare(want)).max(axis=1, initial=0.0) > atol
        updated = int(changed.sum())
        index.add(common[changed], want[changed])
    index.add(missing, _stack(lookup, missing, index.config.dim))
    return {"added": int(missing.size), "removed": removed, "updated": updated}


def _stack(lookup: Mapping[int, np.ndarray], ids: np.ndarray, dim: int) -> np.ndarray:
    if ids.size == 0:
        return np.empty((0, dim), dtype=np.float32)
    return np.stack([np.asarray(lookup[int(i)], dtype=np.float32) for i in ids])
