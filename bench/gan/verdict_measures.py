"""The three measures of bench.gan, on embeddings only (no hashes, SIFT or thresholds).

near-duplicate recall@1 (bench.edited_copies' test split, global-cosine search), same-room recall@5
(bench.same_room's plain cosine peer) and room-type ARI (bench.clustering's default pipeline).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from math import comb
from typing import Any

import numpy as np

from bench.clustering.clustering import knn_purity, quality
from bench.clustering.data import Houses
from bench.edited_copies.near_duplicates import Query
from search.ml.clusters.pipeline import ClusterConfig, fit_clusters


def near_dup_recall(
    collection: np.ndarray, queries: np.ndarray, qs: Sequence[Query], absent: frozenset[int], k: int = 30
) -> dict[str, Any]:
    """Recall@1 and recall@k of edited copies by cosine against the collection, overall and per edit kind."""
    scores = queries @ collection.T  # (Q, N)
    if absent:
        scores[:, sorted(absent)] = -np.inf  # sources left out of the collection (negative queries)
    top = np.argsort(-scores, axis=1)[:, :k]  # (Q, k)
    per_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for q, row in zip(qs, top, strict=True):
        per_kind[q.kind].append((int(row[0]) in q.positives, any(int(i) in q.positives for i in row)))
    hits = [h for v in per_kind.values() for h in v]
    n_stored = collection.shape[0] - len(absent)
    return {
        "n": len(hits),
        "recall@1": float(np.mean([h[0] for h in hits])),
        f"recall@{k}": float(np.mean([h[1] for h in hits])),
        "chance_recall@1": float(np.mean([len(q.positives) for q in qs]) / n_stored),
        "per_kind": {
            kind: {
                "n": len(v),
                "recall@1": float(np.mean([h[0] for h in v])),
                f"recall@{k}": float(np.mean([h[1] for h in v])),
            }
            for kind, v in sorted(per_kind.items())
        },
    }


def same_room_recall(
    collection: np.ndarray, first_query: int, rooms: Sequence[str], k: int = 5
) -> dict[str, Any]:
    """Recall@k averaged per room for the photos collection[first_query:], each excluded from its own search.

    rooms[j] is the room of collection row first_query + j; a hit is another photo of that room in the top k.
    """
    queries = collection[first_query:]  # (M, D)
    scores = queries @ collection.T  # (M, N)
    scores[np.arange(len(queries)), first_query + np.arange(len(queries))] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    room_of = {first_query + j: r for j, r in enumerate(rooms)}
    per_room: dict[str, list[bool]] = defaultdict(list)
    chance: dict[str, list[float]] = defaultdict(list)
    n_other = collection.shape[0] - 1
    for j, row in enumerate(top):
        per_room[rooms[j]].append(any(room_of.get(int(i)) == rooms[j] for i in row))
        mates = sum(r == rooms[j] for r in rooms) - 1
        chance[rooms[j]].append(1.0 - comb(n_other - mates, k) / comb(n_other, k))
    names = sorted(per_room)
    scannet = [r for r in names if r.startswith("scene")]

    def mean_rooms(table: dict[str, list[Any]], which: list[str]) -> float:
        return float(np.mean([np.mean(table[r]) for r in which]))

    return {
        "rooms": len(names),
        f"recall@{k}": mean_rooms(per_room, names),
        f"recall@{k}_scannet": mean_rooms(per_room, scannet),
        f"chance_recall@{k}": mean_rooms(chance, names),
        f"chance_recall@{k}_scannet": mean_rooms(chance, scannet),
        "per_room": {r: float(np.mean(per_room[r])) for r in names},
    }


def room_type_ari(x: np.ndarray, data: Houses, seeds: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """bench.clustering's default-pipeline row: ARI vs room type (mean and min over seeds), NMI, noise."""
    feats, truth = x[data.keep], data.rooms[data.keep]
    runs = []
    for seed in seeds:
        start = time.process_time()
        result = fit_clusters(feats, replace(ClusterConfig(), seed=seed))
        runs.append({**quality(truth, result.labels), "cpu_s": time.process_time() - start})
    row: dict[str, Any] = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
    row.update(
        ari_min=min(r["ari"] for r in runs),
        ari_per_seed=[r["ari"] for r in runs],
        knn5_purity=knn_purity(feats, truth),
        chance_knn5_purity=float(np.sum((np.bincount(truth) / len(truth)) ** 2)),
        photos=len(feats),
    )
    return row
