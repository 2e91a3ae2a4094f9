"""Similar-level re-ranking on the live indexes: hubs move down, other levels stay put."""

from __future__ import annotations

import numpy as np

from search.matching.rerank import RerankIndexes, hub_scores, similar_rerank
from search.ml.index import IndexConfig, VectorIndex
from search.ml.match.levels import Level, LevelThresholds, Match

DIM = 6
T = LevelThresholds(verify_top_k=5, rerank_hub_k=3)
HUB, SPECIFIC, COPY = 100, 200, 300


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _indexes() -> RerankIndexes:
    """A crowd of 8 photos around e0, a hub inside the crowd, one specific photo on e1 alone, a copy on e2."""
    rng = np.random.default_rng(0)
    e = np.eye(DIM, dtype=np.float32)
    crowd = _unit(e[0] + 0.15 * rng.standard_normal((8, DIM)).astype(np.float32))  # (8, D)
    vectors = np.vstack([crowd, _unit(e[0] + 0.9 * e[1])[None], _unit(e[1])[None], e[2][None]])  # (11, D)
    ids = np.array([*range(8), HUB, SPECIFIC, COPY])
    # A zero centre: the vectors are used as they are, but the index counts as centred.
    config = IndexConfig(dim=DIM, centre=(0.0,) * DIM, centre_count=len(ids))
    pair = []
    for _ in range(2):
        index = VectorIndex(config)
        index.add(ids, vectors)
        pair.append(index)
    return RerankIndexes(pair[0], pair[1], "rerank-test")


def test_a_hub_pays_for_being_close_to_everything() -> None:
    hubs = hub_scores(_indexes(), [HUB, SPECIFIC], T)
    assert hubs[HUB] > hubs[SPECIFIC] + 0.2


def test_the_specific_candidate_overtakes_the_hub_and_stronger_levels_stay_first() -> None:
    query = _unit(np.array([0.6, 1.0, 0, 0, 0, 0], dtype=np.float32))  # nearer the hub by cosine
    matches = [
        Match(COPY, Level.EDITED, 0.9, {}),
        Match(HUB, Level.SIMILAR, 0.95, {}),
        Match(SPECIFIC, Level.SIMILAR, 0.86, {}),
        Match(3, Level.SIMILAR, 0.5, {}),  # not in the verified top: keeps its place after the re-scored
    ]
    out = similar_rerank(matches, [HUB, SPECIFIC, COPY], (query, query), _indexes(), T)
    assert [m.id for m in out] == [COPY, SPECIFIC, HUB, 3]
    assert "rerank_score" in out[1].evidence and "rerank_score" not in out[3].evidence


def test_candidates_missing_from_an_index_are_left_in_order() -> None:
    query = _unit(np.ones(DIM, dtype=np.float32))
    matches = [Match(999, Level.SIMILAR, 0.9, {}), Match(998, Level.SIMILAR, 0.8, {})]
    assert similar_rerank(matches, [999, 998], (query, query), _indexes(), T) == matches
