"""Recall@k of same-room retrieval per source and per angle-gap bucket, with room-bootstrap 95% CIs (numpy).

Two views of recall, both from a (Q, N) score matrix over the collection:
- room recall@k: a query hits when any other photo of its room is among its first k ranked photos;
- pair recall@k: for one (query, positive) pair, the positive is ranked among the photos of *other* rooms
  only (the room's other views are left out), so each angle gap is measured on its own.
Photos marked ignored for a query (itself) never count. Ties count against the positive (pessimistic).
Confidence intervals resample rooms, not photos: views of one room are not independent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

KS = (1, 5, 10)


@dataclass(frozen=True)
class Query:
    """One query photo: its collection index, room, source and the collection indices of its room's others."""

    index: int
    room: str
    source: str
    positives: tuple[int, ...]
    gaps: tuple[str, ...]  # angle-gap bucket of each positive, same order


def _negative_mask(n: int, q: Query) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[q.index] = False
    mask[list(q.positives)] = False
    return mask


def ranks(scores: np.ndarray, queries: Sequence[Query]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Best-positive rank per query (Q,) and each positive's rank among negatives, per query."""
    if scores.shape[0] != len(queries):
        raise ValueError(f"{scores.shape[0]} score rows for {len(queries)} queries")
    best = np.empty(len(queries), dtype=np.int64)
    per_pair: list[np.ndarray] = []
    for row, q in zip(scores, queries, strict=True):
        if not q.positives:
            raise ValueError(f"query {q.index} of room {q.room} has no positive")
        neg = row[_negative_mask(len(row), q)]  # (M,)
        pos = row[list(q.positives)]  # (P,)
        pair = (neg[None, :] >= pos[:, None]).sum(axis=1)  # (P,) negatives at or above each positive
        per_pair.append(pair)
        best[len(per_pair) - 1] = pair.min()
    return best, per_pair


def bootstrap_ci(
    hits: np.ndarray, groups: Sequence[str], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean over groups of each group's mean hit rate, with a percentile CI from resampling groups."""
    hits = np.asarray(hits, dtype=np.float64)
    if hits.shape != (len(groups),) or hits.size == 0:
        raise ValueError(f"need one hit per group label, got {hits.shape} and {len(groups)}")
    names = sorted(set(groups))
    index = {g: i for i, g in enumerate(names)}
    ids = np.array([index[g] for g in groups])
    means = np.bincount(ids, weights=hits) / np.bincount(ids)  # (G,)
    rng = np.random.default_rng(seed)
    stats = means[rng.integers(0, len(means), size=(n_boot, len(means)))].mean(axis=1)  # (n_boot,)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return {"mean": float(means.mean()), "lo": float(lo), "hi": float(hi), "rooms": len(names)}


def recall_table(
    scores: np.ndarray,
    queries: Sequence[Query],
    ks: Sequence[int] = KS,
    n_boot: int = 2000,
    seed: int = 0,
    aggregates: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Any]:
    """{"room": {source: {"recall@k": ci}}, "pair": {source/bucket: ...}}; "*name" rows pool sources."""
    pools = {"*all": {q.source for q in queries}, **{f"*{k}": set(v) for k, v in (aggregates or {}).items()}}
    best, per_pair = ranks(scores, queries)
    room_rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    pair_rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for q, b, pair in zip(queries, best, per_pair, strict=True):
        names = [q.source, *(p for p, members in pools.items() if q.source in members)]
        for key in names:
            room_rows[key].append((int(b), q.room))
        for r, gap in zip(pair, q.gaps, strict=True):
            for key in (f"{n}/{gap}" for n in names):
                pair_rows[key].append((int(r), q.room))
    return {
        "room": {k: _ci_per_k(v, ks, n_boot, seed) for k, v in sorted(room_rows.items())},
        "pair": {k: _ci_per_k(v, ks, n_boot, seed) for k, v in sorted(pair_rows.items())},
    }


def _ci_per_k(rows: list[tuple[int, str]], ks: Sequence[int], n_boot: int, seed: int) -> dict[str, Any]:
    rank = np.array([r for r, _ in rows])
    rooms = [g for _, g in rows]
    out: dict[str, Any] = {"queries": len(rows)}
    for k in ks:
        out[f"recall@{k}"] = bootstrap_ci((rank < k).astype(float), rooms, n_boot, seed)
    return out


def macro_recall(table: Mapping[str, Any], k: int = 5, sources: Sequence[str] | None = None) -> float:
    """Mean over sources of the room recall@k (each source weighs the same, however many rooms it has)."""
    names = [s for s in table["room"] if not s.startswith("*") and (sources is None or s in sources)]
    return float(np.mean([table["room"][s][f"recall@{k}"]["mean"] for s in names]))


def format_table(
    results: Mapping[str, Mapping[str, Any]], level: str = "room", ks: Sequence[int] = KS
) -> str:
    """Plain-text table: one line per (method, source or bucket), recall@k mean [lo, hi]."""
    head = f"{'method':<22} {'source':<28} {'rooms':>5} {'q':>5} " + " ".join(
        f"{'R@' + str(k):>19}" for k in ks
    )
    lines = [head]
    for method, table in results.items():
        for name, row in table[level].items():
            cis = [row[f"recall@{k}"] for k in ks]
            cells = [f"{c['mean']:.3f} [{c['lo']:.3f},{c['hi']:.3f}]" for c in cis]
            rooms = row[f"recall@{ks[0]}"]["rooms"]
            lines.append(f"{method:<22} {name:<28} {rooms:>5} {row['queries']:>5} " + " ".join(cells))
    return "\n".join(lines)
