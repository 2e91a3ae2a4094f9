"""Peers on the same (prepared) vectors of the search encoder: bare FAISS flat and IVF-PQ, and Milvus."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.app_scale.report import latency_summary, recall_at_k

K = 10
CHUNK = 50_000


def _chunks(index: Any, ids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for lo in range(0, ids.size, CHUNK):
        part = ids[lo : lo + CHUNK]
        yield part, index.vectors(part)


def per_query(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """One query at a time (as a web request searches): latency summary and the (Q, K) ids found."""
    search(queries[:1])  # first call pays lazy set-up
    ms, found = [], []
    for q in queries:
        started = time.perf_counter()
        ids = search(q[None, :])
        ms.append(1000 * (time.perf_counter() - started))
        found.append(np.asarray(ids).reshape(-1)[:K])
    return latency_summary(ms), np.vstack(found)


def app_index_peer(index: Any, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The app's live index searched in this process (no web, no verification)."""
    stats, found = per_query(lambda q: index.search(q, K, prepared=True)[1], queries)
    return {**stats, "rows": len(index), "recall_at_10": recall_at_k(found, truth, K)}


def faiss_peers(index: Any, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """IndexFlatIP (exact) and IndexIVFPQ (nlist/m/nprobe as the app's shortlist) over every live row."""
    ids = index.ids()
    dim = index.config.dim
    flat = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
    started = time.perf_counter()
    for part, vecs in _chunks(index, ids):
        flat.add_with_ids(vecs, part)
    flat_s = time.perf_counter() - started
    stats, found = per_query(lambda q: flat.search(q, K)[1], queries)
    out = {
        "faiss IndexFlatIP": {
            **stats,
            "rows": int(ids.size),
            "build_s": flat_s,
            "recall_at_10": recall_at_k(found, truth, K),
        }
    }
    from search.ml.index.segment import _pq_m

    nlist = int(min(max(16, 4 * math.sqrt(ids.size)), max(16, ids.size // 39)))
    step = max(1, ids.size // 100_000)
    sample = index.vectors(ids[::step][:100_000])
    nbits = int(min(8, max(4, math.log2(max(16, sample.shape[0]) / 39))))
    started = time.perf_counter()
    ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, _pq_m(dim), nbits, faiss.METRIC_INNER_PRODUCT)
    ivf.train(sample)
    ivf.nprobe = min(48, nlist)
    ivf_ids = faiss.IndexIDMap(ivf)
    for part, vecs in _chunks(index, ids):
        ivf_ids.add_with_ids(vecs, part)
    ivf_s = time.perf_counter() - started
    stats, found = per_query(lambda q: ivf_ids.search(q, K)[1], queries)
    out["faiss IndexIVFPQ"] = {
        **stats,
        "rows": int(ids.size),
        "build_s": ivf_s,
        "recall_at_10": recall_at_k(found, truth, K),
        "nlist": nlist,
        "m": _pq_m(dim),
        "nbits": nbits,
        "nprobe": ivf.nprobe,
        "rescored": False,
    }
    return out


def milvus_peer(index: Any, queries: np.ndarray, truth: np.ndarray, cap: int, kind: str) -> dict[str, Any]:
    """MilvusBackend (milvus-lite) over at most ``cap`` rows; recall vs exact search on those rows."""
    from search.ml.index.milvus import MilvusBackend

    ids = index.ids()
    capped = ids.size > cap
    ids = ids[:cap]
    if capped:  # the truth over the rows Milvus holds
        flat = faiss.IndexIDMap(faiss.IndexFlatIP(index.config.dim))
        for part, vecs in _chunks(index, ids):
            flat.add_with_ids(vecs, part)
        truth = flat.search(queries, K)[1]
    # Not a TemporaryDirectory: milvus-lite's server stops after close() returns and may still write there,
    # and a failed cleanup must not throw away the measurement.
    tmp = tempfile.mkdtemp(prefix="flatsite-milvus-")
    try:
        backend = MilvusBackend(str(Path(tmp) / "bench.db"), "bench", index.config.dim, index_type=kind)
        started = time.perf_counter()
        for part, vecs in _chunks(index, ids):
            backend.add(part, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
        backend.flush()
        insert_s = time.perf_counter() - started
        stats, found = per_query(lambda q: backend.search(q, K)[1], queries)
        backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        **stats,
        "rows": int(ids.size),
        "insert_s": insert_s,
        "index_type": kind,
        "recall_at_10": recall_at_k(found, truth, K),
        "capped": capped,
        "cap": cap,
    }
