"""Clustering pipeline on seeded synthetic blobs (4 Gaussian clusters in 64-D plus far outliers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from search.ml.clusters import ops as cluster_ops
from search.ml.clusters.pipeline import (
    ClusterConfig,
    ClusterModel,
    ClusterResult,
    FitCancelled,
    assign_clusters,
    assign_full,
    config_from_dict,
    config_to_dict,
    fit_clusters,
)

N_BLOB, N_OUT = 100, 6
CFG = ClusterConfig(min_cluster_size=15, umap_epochs=200)


@dataclass
class Blobs:
    x: np.ndarray  # (406, 64)
    y: np.ndarray  # (406,), -1 for the far outliers
    centres: np.ndarray  # (4, 64)


def make_blobs(seed: int = 0) -> Blobs:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 64)) * 3.0
    y = np.repeat(np.arange(4), N_BLOB)
    x = centres[y] + rng.normal(size=(len(y), 64)) * 0.5
    far = rng.normal(size=(N_OUT, 64)) * 30.0
    return Blobs(np.vstack([x, far]).astype(np.float32), np.concatenate([y, np.full(N_OUT, -1)]), centres)


def blob_points(blobs: Blobs, per_blob: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), per_blob)
    return (blobs.centres[y] + rng.normal(size=(len(y), 64)) * 0.5).astype(np.float32), y


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    return make_blobs()


@pytest.fixture(scope="module")
def fitted(blobs: Blobs) -> tuple[ClusterResult, list[tuple[str, float]]]:
    stages: list[tuple[str, float]] = []
    result = fit_clusters(blobs.x, CFG, on_stage=lambda name, frac: stages.append((name, frac)))
    return result, stages


def label_of_blob(result: ClusterResult, blobs: Blobs) -> dict[int, int]:
    return {
        b: int(np.bincount(result.labels[blobs.y == b][result.labels[blobs.y == b] >= 0]).argmax())
        for b in range(4)
    }


def test_fit_finds_the_blobs_and_marks_far_outliers_as_noise(fitted, blobs) -> None:
    result, _ = fitted
    inliers = blobs.y >= 0
    assert adjusted_rand_score(blobs.y[inliers], result.labels[inliers]) > 0.99
    assert (result.labels[~inliers] == -1).all()
    assert result.model.n_clusters == 4
    assert result.stats["noise_share"] == pytest.approx(N_OUT / len(blobs.x))


def test_result_arrays_are_aligned_and_in_range(fitted, blobs) -> None:
    result, _ = fitted
    n = len(blobs.x)
    assert result.labels.shape == result.probabilities.shape == result.centrality.shape == (n,)
    assert result.map_xy.shape == (n, 2) and result.map_xy.dtype == np.float32
    assert np.isfinite(result.map_xy).all()
    assert ((result.probabilities >= 0) & (result.probabilities <= 1)).all()
    assert (result.centrality[result.labels < 0] == 0).all()
    assert (result.centrality[result.labels >= 0] > 0).all()
    # the far outliers are the most outlying photos
    assert result.outlier_scores[blobs.y < 0].min() > result.outlier_scores[blobs.y >= 0].max()


def test_on_stage_reports_every_stage_start_and_end_in_order(fitted) -> None:
    _, stages = fitted
    expected = [(s, f) for s in ("pca", "umap", "hdbscan", "map") for f in (0.0, 1.0)]
    assert stages == expected
    assert set(fitted[0].timings) >= {"pca", "umap", "hdbscan", "map", "total"}


def test_fit_is_deterministic_for_a_seed(fitted, blobs) -> None:
    again = fit_clusters(blobs.x, CFG)
    assert np.array_equal(again.labels, fitted[0].labels)
    np.testing.assert_allclose(again.map_xy, fitted[0].map_xy, atol=1e-5)


def test_should_stop_aborts_between_stages(blobs) -> None:
    stages: list[str] = []
    with pytest.raises(FitCancelled):
        fit_clusters(
            blobs.x, CFG, on_stage=lambda s, f: stages.append(s), should_stop=lambda: "pca" in stages
        )
    assert stages == ["pca", "pca"]


def test_assign_puts_new_blob_points_into_their_clusters(fitted, blobs) -> None:
    result, _ = fitted
    new, y = blob_points(blobs, 10, seed=1)
    labels, probs, map_xy = assign_clusters(result.model, new)
    expected = np.array([label_of_blob(result, blobs)[b] for b in y])
    assert np.array_equal(labels, expected)
    assert (probs > 0.5).all()
    # new points land on the map near their cluster
    for b in range(4):
        centre = result.map_xy[result.labels == expected[b * 10]].mean(0)
        spread = np.linalg.norm(result.map_xy - centre, axis=1)[result.labels == expected[b * 10]].max()
        assert (np.linalg.norm(map_xy[y == b] - centre, axis=1) < 2 * spread).all()


def test_assign_marks_far_new_points_as_noise(fitted) -> None:
    far = (np.random.default_rng(5).normal(size=(3, 64)) * 30.0).astype(np.float32)
    labels, probs, _ = assign_clusters(fitted[0].model, far)
    assert (labels == -1).all() and (probs == 0).all()


def test_assign_of_nothing_returns_empty_arrays(fitted) -> None:
    done = assign_full(fitted[0].model, np.zeros((0, 64), dtype=np.float32))
    assert done.labels.shape == (0,) and done.map_xy.shape == (0, 2)


def test_saved_model_loads_without_pickle_and_assigns_identically(fitted, blobs, tmp_path: Path) -> None:
    model = fitted[0].model
    path = tmp_path / "run.npz"
    model.save(path)
    loaded = ClusterModel.load(path)
    assert loaded.config == model.config
    new, _ = blob_points(blobs, 5, seed=2)
    for a, b in zip(assign_clusters(model, new), assign_clusters(loaded, new), strict=True):
        np.testing.assert_array_equal(a, b)
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert "header" in npz.files


def test_fit_sample_clusters_a_sample_and_assigns_the_rest(blobs) -> None:
    stages: list[str] = []
    result = fit_clusters(
        blobs.x,
        ClusterConfig(min_cluster_size=15, umap_epochs=200, fit_sample=250),
        on_stage=lambda s, f: stages.append(s),
    )
    assert result.in_fit_sample.sum() == 250
    assert "assign" in stages
    inliers = blobs.y >= 0
    assert adjusted_rand_score(blobs.y[inliers], result.labels[inliers]) > 0.99
    assert (result.labels[~inliers] == -1).all()


def test_raw_noise_policy_keeps_hdbscan_labels_and_still_assigns(blobs) -> None:
    cfg = ClusterConfig(min_cluster_size=15, umap_epochs=200, noise_reassign="none", outlier_z=None)
    result = fit_clusters(blobs.x, cfg)
    assert np.array_equal(result.labels < 0, result.raw_noise)
    new, y = blob_points(blobs, 5, seed=3)
    labels, _, _ = assign_clusters(result.model, new)
    assert np.array_equal(labels, np.array([label_of_blob(result, blobs)[b] for b in y]))


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys() -> None:
    cfg = ClusterConfig(pca_dim=10, min_samples=5, fit_sample=None, outlier_z=None)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown ClusterConfig fields: removed_option"):
        config_from_dict({**config_to_dict(cfg), "removed_option": 1})


def test_too_few_photos_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_clusters(np.zeros((10, 8), dtype=np.float32), ClusterConfig())


def test_numpy_smooth_knn_dist_matches_umap() -> None:
    from umap.umap_ import smooth_knn_dist

    rng = np.random.default_rng(0)
    dist = np.sort(rng.gamma(2.0, 1.0, size=(50, 15)).astype(np.float32), axis=1)
    dist[:, 0] = 0.0  # self-k-NN: the point itself first
    for connectivity in (0.0, 1.0):
        sigma, rho = cluster_ops.smooth_knn_dist(dist, connectivity)
        # .py_func: umap's kernel as plain Python, without its ~10 s parallel JIT compile
        ref_sigma, ref_rho = smooth_knn_dist.py_func(dist, 15.0, local_connectivity=connectivity)
        np.testing.assert_allclose(rho, ref_rho, rtol=1e-5)
        np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-3)


def test_ivf_knn_for_big_batches_matches_exact_search_and_is_repeatable() -> None:
    rng = np.random.default_rng(0)
    base = (rng.normal(size=(20, 8)) * 5)[rng.integers(0, 20, 5_000)] + rng.normal(size=(5_000, 8))
    queries = base[:2_000] + rng.normal(size=(2_000, 8)) * 0.1
    exact, _ = cluster_ops.KnnIndex(base, ivf_min_base=10**9).search(queries, 10)
    index = cluster_ops.KnnIndex(base, ivf_min_base=5_000, ivf_min_queries=1_000)
    approx, dist = index.search(queries, 10)
    assert index._ivf is not None  # the IVF path was taken
    assert np.mean((approx[:, :, None] == exact[:, None, :]).any(2)) > 0.95
    assert (np.diff(dist, axis=1) >= 0).all()
    again = cluster_ops.KnnIndex(base, ivf_min_base=5_000, ivf_min_queries=1_000).search(queries, 10)[0]
    assert np.array_equal(again, approx)
