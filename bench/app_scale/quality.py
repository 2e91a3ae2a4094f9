"""recall@10 of the live index against exact search over every stored Feature vector (streamed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.app_scale.report import recall_at_k
from bench.app_scale.rows import Synth
from bench.app_scale.stages import real_vectors
from bench.app_scale.vectors import synthetic_chunk

K = 10


def recall_queries(synth: Synth, encoder: str, real_ids: np.ndarray, count: int) -> np.ndarray:
    """(count, D) raw queries: half the real photos' own vectors, half held-out synthetic ones."""
    n_real = min(count // 2, real_ids.size)
    real = real_vectors(encoder, real_ids[:n_real])
    held_out = synthetic_chunk(
        synth.centres[encoder],
        0,
        count - n_real,
        noise=synth.noise,
        seed=synth.seed,
        stream=f"queries-{encoder}",
    )
    return np.vstack([real, held_out]).astype(np.float32)


def _merge_top(
    best_s: np.ndarray, best_i: np.ndarray, s: np.ndarray, i: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = np.hstack([best_s, s]), np.hstack([best_i, i])
    part = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)


def exact_truth(encoder: str, index: Any, prepared: np.ndarray, k: int = K) -> np.ndarray:
    """(Q, k) ids of the exact top-k over every indexable stored vector, prepared as the index does."""
    from search.matching.feature_reads import feature_chunks

    best_s = np.full((prepared.shape[0], 0), -np.inf, np.float32)
    best_i = np.empty((prepared.shape[0], 0), np.int64)
    for ids, vecs in feature_chunks(encoder):
        if not ids.size:
            continue
        scores = (index.prepare(vecs) @ prepared.T).T  # (Q, B)
        best_s, best_i = _merge_top(best_s, best_i, scores, np.broadcast_to(ids, scores.shape), k)
    return best_i


def live_recall(synth: Synth, encoder: str, index: Any, real_ids: np.ndarray, count: int) -> dict[str, Any]:
    """{recall_at_10, queries, real_queries} of the live index against the exact truth."""
    raw = recall_queries(synth, encoder, real_ids, count)
    prepared = index.prepare(raw)
    found = index.search(prepared, K, prepared=True)[1]
    truth = exact_truth(encoder, index, prepared)
    n_real = min(count // 2, real_ids.size)
    return {
        "recall_at_10": recall_at_k(found, truth, K),
        "recall_real_queries": recall_at_k(found[:n_real], truth[:n_real], K),
        "recall_synthetic_queries": recall_at_k(found[n_real:], truth[n_real:], K),
        "queries": int(raw.shape[0]),
        "real_queries": n_real,
        "prepared": prepared,
        "truth": truth,
    }
