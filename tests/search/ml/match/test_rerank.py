"""Similar-level re-ranking: centring, combined cosines, hub penalty, re-ordering, serialisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from search.ml.match.levels import Level, LevelThresholds, Match
from search.ml.match.rerank import (
    CentringMeans,
    centre_unit,
    combined_similarity,
    hub_score,
    rerank_scores,
    rerank_similar,
)

T = LevelThresholds()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_centre_unit_removes_the_shared_direction_and_keeps_unit_length() -> None:
    shared = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    x = _unit(np.array([[1.0, 0.2, 0.0], [1.0, -0.2, 0.0]]))  # (2, 3): raw cosine ~0.92
    centred = centre_unit(x, x.mean(axis=0))
    assert np.allclose(np.linalg.norm(centred, axis=1), 1.0)
    assert float(centred[0] @ centred[1]) == pytest.approx(-1.0, abs=1e-5)
    assert abs(float(centred[0] @ shared)) < 1e-5


def test_centre_unit_rejects_a_mean_of_another_dimension() -> None:
    with pytest.raises(ValueError, match="does not match"):
        centre_unit(np.ones((2, 3), dtype=np.float32), np.zeros(4, dtype=np.float32))


def test_combined_similarity_weights_the_two_encoders() -> None:
    means = CentringMeans(np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.float32))
    q = np.array([1.0, 0.0], dtype=np.float32)
    agree = np.array([[1.0, 0.0]], dtype=np.float32)  # (1, 2)
    orthogonal = np.array([[0.0, 1.0]], dtype=np.float32)
    sims = combined_similarity(q, q, agree, orthogonal, means, T)  # Lite0 says 1, Lite2 says 0
    assert sims.shape == (1,)
    assert float(sims[0]) == pytest.approx(0.5)
    lite2_only = dataclasses.replace(T, rerank_lite2_weight=1.0)
    assert float(combined_similarity(q, q, agree, orthogonal, means, lite2_only)[0]) == pytest.approx(0.0)


def test_combined_similarity_rejects_unequal_candidate_lists() -> None:
    means = CentringMeans(np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.float32))
    q = np.ones(2, dtype=np.float32)
    with pytest.raises(ValueError, match="Lite2 candidate"):
        combined_similarity(q, q, np.ones((2, 2), np.float32), np.ones((1, 2), np.float32), means, T)


def test_hub_score_is_the_mean_of_the_k_highest_similarities() -> None:
    t = dataclasses.replace(T, rerank_hub_k=2)
    assert hub_score(np.array([0.1, 0.9, 0.5, 0.7]), t) == pytest.approx(0.8)
    assert hub_score(np.array([0.3]), t) == pytest.approx(0.3)
    assert hub_score(np.array([]), t) == 0.0


def test_hub_penalty_lets_a_specific_match_beat_a_hub() -> None:
    combined = np.array([0.50, 0.45], dtype=np.float32)  # candidate 0 is closer but is a hub
    scores = rerank_scores(combined, [0.40, 0.10], T)
    assert scores.tolist() == pytest.approx([0.10, 0.35])
    with pytest.raises(ValueError, match="hub scores"):
        rerank_scores(combined, [0.1], T)


def test_rerank_similar_reorders_only_the_similar_level() -> None:
    matches = [
        Match(1, Level.EDITED, 0.9),
        Match(2, Level.SAME_ROOM, 0.2),
        Match(3, Level.SIMILAR, 0.8, {"global_score": 0.8}),
        Match(4, Level.SIMILAR, 0.7, {"global_score": 0.7}),
        Match(5, Level.SIMILAR, 0.6, {"global_score": 0.6}),  # outside the re-scored shortlist
    ]
    out = rerank_similar(matches, {3: 0.05, 4: 0.30, 1: -5.0})
    assert [m.id for m in out] == [1, 2, 4, 3, 5]
    assert out[0].score == 0.9  # edited match untouched even though it was re-scored
    assert out[2].score == pytest.approx(0.3)
    assert out[2].evidence == {"global_score": 0.7, "rerank_score": 0.3}
    assert matches[3].score == 0.7  # input not mutated


def test_centring_means_round_trip_and_reject_bad_bytes() -> None:
    rng = np.random.default_rng(0)
    means = CentringMeans.fit(rng.normal(size=(5, 3)), rng.normal(size=(5, 4)))
    back = CentringMeans.from_bytes(means.to_bytes())
    assert back.lite0.shape == (3,) and back.lite2.shape == (4,)
    assert np.array_equal(back.lite0, means.lite0) and np.array_equal(back.lite2, means.lite2)
    with pytest.raises(ValueError, match="expected"):
        CentringMeans.from_bytes(means.to_bytes()[:-4])
    with pytest.raises(ValueError, match="same N"):
        CentringMeans.fit(np.ones((2, 3)), np.ones((3, 3)))
