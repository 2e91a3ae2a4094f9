"""Vector indexes: the FAISS wrapper (vector), its versioned files on disk (store), reconciling (reconcile).

Callers import from here; inside the package, modules import each other in one direction only:
config <- vector <- store, reconcile.
"""

from search.ml.index.config import KINDS, IndexConfig, IndexCorrupt, IndexLocked, IndexMissing
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
    "VectorIndex",
    "build_index",
    "plan_reconcile",
    "reconcile",
]
