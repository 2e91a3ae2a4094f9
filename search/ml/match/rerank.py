"""Re-ranking of the similar-look level: centred Lite0 + Lite2 cosines minus the candidate's hubness.

Chosen with bench.same_room (see bench/README.md, "Same room"). Raw EfficientNet-Lite cosines are compressed
(every indoor photo looks alike), so both embeddings are centred on the collection mean before comparing.
Lite0 (the search encoder) and Lite2 (the clustering encoder) err on different photos, so their centred
cosines are averaged. Some photos ("hubs": low-texture interiors) are close to everything; as in CSLS
(Conneau et al. 2018, "Word translation without parallel data") each candidate pays the mean similarity to
its own nearest stored neighbours, computed once when the photo is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from search.ml.index.config import centre_unit
from search.ml.match.levels import Level, LevelThresholds, Match

__all__ = [
    "CentringMeans",
    "blend",
    "centre_unit",
    "combined_similarity",
    "hub_score",
    "rerank_scores",
    "rerank_similar",
]


@dataclass(frozen=True)
class CentringMeans:
    """Mean Lite0 and Lite2 embeddings of the stored photos (one pair per index version)."""

    lite0: np.ndarray  # (D0,) float32
    lite2: np.ndarray  # (D2,) float32

    @classmethod
    def fit(cls, lite0: np.ndarray, lite2: np.ndarray) -> CentringMeans:
        """Means of (N, D0) and (N, D2) stored embeddings."""
        if lite0.ndim != 2 or lite2.ndim != 2 or len(lite0) == 0 or len(lite0) != len(lite2):
            raise ValueError(
                f"need two non-empty (N, D) arrays with the same N, got {lite0.shape} and {lite2.shape}"
            )
        return cls(lite0.mean(axis=0).astype(np.float32), lite2.mean(axis=0).astype(np.float32))

    def to_bytes(self) -> bytes:
        """float32 Lite0 mean then Lite2 mean, each prefixed by its length (no pickle)."""
        parts = [np.asarray([len(self.lite0), len(self.lite2)], dtype="<i4").tobytes()]
        parts += [np.asarray(v, dtype="<f4").tobytes() for v in (self.lite0, self.lite2)]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CentringMeans:
        """Inverse of to_bytes."""
        if len(data) < 8:
            raise ValueError("centring means: truncated header")
        n0, n2 = (int(v) for v in np.frombuffer(data[:8], dtype="<i4"))
        if n0 < 1 or n2 < 1 or len(data) != 8 + 4 * (n0 + n2):
            raise ValueError(f"centring means: expected {8 + 4 * (n0 + n2)} bytes, got {len(data)}")
        values = np.frombuffer(data[8:], dtype="<f4").astype(np.float32)
        return cls(values[:n0], values[n0:])


def combined_similarity(
    query0: np.ndarray,
    query2: np.ndarray,
    cands0: np.ndarray,
    cands2: np.ndarray,
    means: CentringMeans,
    t: LevelThresholds,
) -> np.ndarray:
    """(K,) weighted centred cosines of a query's (D0,), (D2,) embeddings to (K, D0), (K, D2) candidates."""
    if len(cands0) != len(cands2):
        raise ValueError(f"{len(cands0)} Lite0 but {len(cands2)} Lite2 candidate embeddings")
    s0 = centre_unit(cands0, means.lite0) @ centre_unit(query0, means.lite0)  # (K,)
    s2 = centre_unit(cands2, means.lite2) @ centre_unit(query2, means.lite2)  # (K,)
    return blend(s0, s2, t)


def blend(s0: np.ndarray, s2: np.ndarray, t: LevelThresholds) -> np.ndarray:
    """(…) centred Lite0 and Lite2 cosines mixed with the Lite2 share rerank_lite2_weight."""
    return np.asarray((1.0 - t.rerank_lite2_weight) * s0 + t.rerank_lite2_weight * s2, dtype=np.float32)


def hub_score(neighbour_similarities: np.ndarray, t: LevelThresholds) -> float:
    """A stored photo's hubness: mean of its rerank_hub_k highest combined similarities to stored photos."""
    sims = np.asarray(neighbour_similarities, dtype=np.float32).ravel()
    if sims.size == 0:
        return 0.0  # first photo of a collection: nothing to be a hub of
    return float(np.sort(sims)[-t.rerank_hub_k :].mean())


def rerank_scores(
    combined: np.ndarray, cand_hub: Sequence[float] | np.ndarray, t: LevelThresholds
) -> np.ndarray:
    """(K,) re-ranking scores: combined similarity minus rerank_hub_weight x the candidate's hub score."""
    hub = np.asarray(cand_hub, dtype=np.float32)
    if hub.shape != combined.shape:
        raise ValueError(f"{combined.shape[0]} similarities but {hub.shape} hub scores")
    return np.asarray(combined - t.rerank_hub_weight * hub, dtype=np.float32)


def rerank_similar(matches: Sequence[Match], scores: Mapping[int, float]) -> list[Match]:
    """Re-order the SIMILAR level: re-scored ids first by score, then the rest in their given order.

    Exact, edited and same-room matches keep their places; call this on rank_matches' output, last.
    """
    strong = [m for m in matches if m.level != Level.SIMILAR]
    similar = [m for m in matches if m.level == Level.SIMILAR]
    scored = [
        replace(
            m,
            score=round(float(scores[m.id]), 4),
            evidence={**m.evidence, "rerank_score": round(float(scores[m.id]), 4)},
        )
        for m in similar
        if m.id in scores
    ]
    scored.sort(key=lambda m: (-m.score, m.id))
    rest = [m for m in similar if m.id not in scores]
    return [*strong, *scored, *rest]
