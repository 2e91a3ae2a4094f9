"""bench.app_scale's pure helpers: the synthetic vectors and the report's arithmetic (no run)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.app_scale.report import growth_per_100k, percentile, recall_at_k, table, targets
from bench.app_scale.vectors import cluster_centres, synthetic_chunk


def _centres(dim: int = 64, count: int = 20) -> np.ndarray:
    base = np.abs(np.random.default_rng(1).standard_normal((30, dim)))  # like ReLU-pooled features
    return cluster_centres(base, count, 1.0, np.random.default_rng(2))


def test_synthetic_vectors_are_unit_float32_and_the_same_on_a_rerun() -> None:
    centres = _centres()
    a = synthetic_chunk(centres, 500, 300, noise=0.6, seed=0, stream="effnet-lite0")
    b = synthetic_chunk(centres, 500, 300, noise=0.6, seed=0, stream="effnet-lite0")
    assert a.dtype == np.float32 and a.shape == (300, 64)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    other = synthetic_chunk(centres, 500, 300, noise=0.6, seed=0, stream="effnet-lite2")
    assert not np.allclose(a, other)  # each encoder (stream) gets its own rows


def test_synthetic_vectors_cluster_around_their_centres() -> None:
    centres = _centres(dim=256, count=50)
    rows = synthetic_chunk(centres, 0, 2000, noise=0.6, seed=3, stream="s")
    sims = rows @ centres.T  # (N, C)
    nearest = np.sort(sims, axis=1)
    # Each row sits far closer to one centre than to the next best: the data has cluster structure.
    assert np.median(nearest[:, -1]) > 0.8
    assert np.median(nearest[:, -1] - nearest[:, -2]) > 0.3


def test_centres_stay_near_the_real_features_but_apart_from_them() -> None:
    base = np.abs(np.random.default_rng(1).standard_normal((30, 128)))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    centres = cluster_centres(base, 40, 1.0, np.random.default_rng(0))
    best = (centres @ base.T).max(axis=1)
    assert best.min() > 0.5 and best.max() < 0.95
    with pytest.raises(ValueError):
        cluster_centres(np.empty((0, 8)), 4, 1.0, np.random.default_rng(0))


def test_percentile_is_nearest_rank_like_the_load_report() -> None:
    values = [200.0, 300.0, 2500.0, 400.0]
    assert percentile(values, 50) == 300.0
    assert percentile(values, 95) == 2500.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50) == 3.0  # the middle one, never below it
    assert percentile([], 50) is None


def test_recall_counts_shared_ids_of_the_top_k_and_padding_as_misses() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 2, 1], [5, 6, -1, -1]])
    assert recall_at_k(found, truth, 4) == pytest.approx((4 + 2) / 8)
    assert recall_at_k(found[:, :2], truth[:, :2], 2) == pytest.approx((0 + 2) / 4)
    with pytest.raises(ValueError):
        recall_at_k(found[:1], truth, 4)


def test_growth_per_100k_scales_the_difference_to_100k_photos() -> None:
    assert growth_per_100k(900.0, 700.0, 60_000, 10_000) == pytest.approx(400.0)
    assert growth_per_100k(900.0, 700.0, 10_000, 10_000) is None
    assert growth_per_100k(None, 700.0, 60_000, 10_000) is None


def test_targets_say_met_not_met_or_not_measured() -> None:
    result = {
        "search_p95_ms": 250.0,
        "add_cost_ratio_100k_vs_10k": 2.0,
        "web_rss_mb_per_100k": None,
        "recall_at_10": 0.95,
        "edited_found": {"found": 99, "total": 100, "share": 0.99},
    }
    got = targets(result)
    assert got["search_p95_ms"] == {"target": "<= 300", "value": 250.0, "met": True}
    assert got["add_cost_ratio_100k_vs_10k"]["met"] is False
    assert got["web_rss_mb_per_100k"]["met"] is None
    assert got["recall_at_10"]["met"] is True
    assert got["edited_found_share"]["met"] is False
    text = table({**result, "targets": got, "peers": {"milvus-lite HNSW": "failed: boom"}})
    assert "search_p95_ms <= 300: 250.0 (met)" in text
    assert "NOT met" in text and "not measured" in text and "failed: boom" in text
