"""Vector indexes: the FAISS wrapper (vector), immutable segments (segment, segments), versioned files on
disk (store), compaction (compact), reconciling (reconcile), and the backend interface (backend, milvus).

Callers import from here; inside the package, modules import each other in one direction only:
config <- vector, segment <- segments <- store, reconcile, backend <- compact, milvus.
"""

from search.ml.index.config import (
    KINDS,
    IndexConfig,
    IndexCorrupt,
    IndexLocked,
    IndexMissing,
    SearchableIndex,
)
from search.ml.index.reconcile import plan_reconcile, reconcile
from search.ml.index.store import IndexStore, IndexVersionInfo, LiveIndex
from search.ml.index.vector import VectorIndex, build_index

__all__ = [
    "KINDS",
    "IndexConfig",
    "IndexCorrupt",
    "IndexLocked",
    "IndexMissing",
    "IndexStore",
    "IndexVersionInfo",
    "LiveIndex",
    "SearchableIndex",
    "VectorIndex",
    "build_index",
    "plan_reconcile",
    "reconcile",
]
