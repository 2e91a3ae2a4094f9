"""Photo clustering: encoder features -> PCA -> UMAP -> HDBSCAN, a 2-D UMAP map, and incremental assignment.

Noise policy (`noise_reassign="knn"`, the default): HDBSCAN's raw noise is mostly fringe members of real
clusters, so noise points are given the label of their nearest clustered neighbours in UMAP space; only
"real outliers" stay noise: photos whose k-NN distance in PCA space is far above the collection's typical
one (robust z > `outlier_z`). `noise_reassign="none"` keeps HDBSCAN's raw noise (outlier rule still applies).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import hdbscan
import numpy as np

from search.ml.clusters import ops
from search.ml.clusters.model import Assignment, ClusterConfig, ClusterModel, config_from_dict, config_to_dict

__all__ = [
    "Assignment",
    "ClusterConfig",
    "ClusterModel",
    "ClusterResult",
    "FitCancelled",
    "assign_clusters",
    "assign_full",
    "config_from_dict",
    "config_to_dict",
    "fit_clusters",
]

StageCallback = Callable[[str, float], None]
StopCallback = Callable[[], bool]
_ASSIGN_CHUNK = 50_000


class FitCancelled(RuntimeError):
    """Raised by fit_clusters when should_stop() returns True."""


@dataclass
class ClusterResult:
    """Output of fit_clusters, aligned with the input rows."""

    labels: np.ndarray  # (N,) int64, -1 = noise
    probabilities: np.ndarray  # (N,) float32
    outlier_scores: np.ndarray  # (N,) float32 in [0, 1)
    map_xy: np.ndarray  # (N, map_dim) float32
    centrality: np.ndarray  # (N,) float32, higher = more representative
    model: ClusterModel
    timings: dict[str, float]  # wall seconds per stage and total; '<stage>_cpu': CPU seconds
    raw_noise: np.ndarray  # (N,) bool: HDBSCAN called it noise (fit-sample points only)
    in_fit_sample: np.ndarray  # (N,) bool: point was clustered by HDBSCAN, not assigned
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class _Progress:
    on_stage: StageCallback | None
    should_stop: StopCallback | None
    timings: dict[str, float]

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.check()
        self.report(name, 0.0)
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        # CPU seconds of this process (all threads): comparable across runs on a busy machine
        self.timings[f"{name}_cpu"] = self.timings.get(f"{name}_cpu", 0.0) + time.process_time() - cpu
        self.report(name, 1.0)

    def report(self, name: str, fraction: float) -> None:
        if self.on_stage is not None:
            self.on_stage(name, fraction)

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise FitCancelled("clustering stopped on request")


def _fit_umap(
    x: np.ndarray,
    knn: tuple[np.ndarray, np.ndarray],
    dim: int,
    min_dist: float,
    cfg: ClusterConfig,
    init: str | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded UMAP on the precomputed exact k-NN; returns (embedding (M, dim) float32, (a, b))."""
    k = cfg.umap_neighbors
    emb, ab = ops.umap_fit(x, (knn[0][:, :k], knn[1][:, :k]), dim, min_dist, cfg.umap_epochs, init, cfg.seed)
    return emb, np.array(ab, dtype=np.float64)


def _map_init(emb: np.ndarray, dim: int) -> np.ndarray:
    """Start the map from the top principal axes of the clustering embedding, so both views agree."""
    centred = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    init = centred @ vt[:dim].T
    return (10.0 * init / max(float(np.abs(init).max()), 1e-12)).astype(np.float32)


def _hdbscan(emb: np.ndarray, cfg: ClusterConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seedless, deterministic HDBSCAN: (labels (M,), probabilities (M,))."""
    model = hdbscan.HDBSCAN(
        min_cluster_size=cfg.min_cluster_size,
        min_samples=cfg.min_samples,
        cluster_selection_epsilon=cfg.cluster_selection_epsilon,
        cluster_selection_method=cfg.cluster_selection_method,
        core_dist_n_jobs=1,
    )
    model.fit(emb.astype(np.float64))
    return model.labels_.astype(np.int64), model.probabilities_.astype(np.float32)


def _resolve_noise(
    raw: np.ndarray, probs: np.ndarray, emb: np.ndarray, z: np.ndarray, cfg: ClusterConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the noise policy to HDBSCAN's output (see module docstring)."""
    labels, probs = raw.copy(), probs.copy()
    clustered, noise = np.flatnonzero(raw >= 0), np.flatnonzero(raw < 0)
    if cfg.noise_reassign == "knn" and len(clustered) and len(noise):
        idx, dist = ops.knn_search(emb[clustered], emb[noise], cfg.reassign_neighbors)
        labels[noise], probs[noise] = ops.knn_vote(raw[clustered][idx], dist, probs[clustered][idx])
    elif cfg.noise_reassign not in ("knn", "none"):
        raise ValueError(f"unknown noise_reassign {cfg.noise_reassign!r}")
    if cfg.outlier_z is not None:
        outliers = z > cfg.outlier_z
        labels[outliers], probs[outliers] = -1, 0.0
    return labels, probs


def _sample(n: int, cfg: ClusterConfig) -> np.ndarray:
    """Sorted indices of the points HDBSCAN sees: all, or a seeded sample of cfg.fit_sample."""
    if cfg.fit_sample is None or n <= cfg.fit_sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=cfg.fit_sample, replace=False))


def _check_input(x: np.ndarray, cfg: ClusterConfig) -> None:
    needed = max(cfg.umap_neighbors + 2, cfg.outlier_neighbors + 2, 2 * cfg.min_cluster_size)
    if x.ndim != 2 or len(x) < needed:
        raise ValueError(f"need a 2-D feature array with at least {needed} rows, got shape {x.shape}")


def _fit_model(
    x_fit: np.ndarray, cfg: ClusterConfig, progress: _Progress
) -> tuple[ClusterModel, np.ndarray, np.ndarray]:
    """Fit PCA, UMAP, HDBSCAN and the map; returns the model, HDBSCAN's raw labels and k-NN distances."""
    with progress.stage("pca"):
        mean, components = ops.fit_pca(x_fit, cfg.pca_dim, cfg.seed)
        reduced = ops.apply_pca(x_fit, mean, components)
    with progress.stage("umap"):
        # one self-k-NN (column 0 is the point itself) serves both UMAPs and the outlier rule
        index = ops.KnnIndex(reduced, seed=cfg.seed)
        knn = index.search(reduced, max(cfg.umap_neighbors, cfg.outlier_neighbors + 1))
        emb, umap_ab = _fit_umap(reduced, knn, cfg.umap_dim, cfg.umap_min_dist, cfg, "spectral")
    with progress.stage("hdbscan"):
        raw, probs = _hdbscan(emb, cfg)
        kth = knn[1][:, cfg.outlier_neighbors]
        centre, scale = ops.robust_log_stats(kth)
        z = ops.outlier_z(kth, centre, scale)
        labels, probs = _resolve_noise(raw, probs, emb, z, cfg)
    with progress.stage("map"):
        if cfg.map_dim > 0:
            map_xy, map_ab = _fit_umap(
                reduced, knn, cfg.map_dim, cfg.map_min_dist, cfg, _map_init(emb, cfg.map_dim)
            )
        else:
            map_xy, map_ab = np.zeros((len(emb), 0), dtype=np.float32), np.ones(2)
    centres, scales = ops.cluster_centres(reduced, labels, int(raw.max()) + 1)
    model = ClusterModel(
        config=cfg,
        pca_mean=mean,
        pca_components=components,
        fit_reduced=reduced,
        fit_embedding=emb,
        fit_map=map_xy,
        fit_labels=labels,
        fit_probabilities=probs,
        umap_ab=umap_ab,
        map_ab=map_ab,
        outlier_stats=np.array([centre, scale]),
        centres=centres,
        centre_scales=scales,
    )
    model._indexes["reduced"] = index  # the assign stage reuses it
    return model, raw, kth


def _fitted_assignment(model: ClusterModel, kth: np.ndarray) -> Assignment:
    """The fit points' own placement, in the same form as assigned points."""
    return Assignment(
        labels=model.fit_labels,
        probabilities=model.fit_probabilities,
        map_xy=model.fit_map,
        embedding=model.fit_embedding,
        outlier_scores=ops.outlier_score(kth, float(model.outlier_stats[0])),
        centrality=ops.centrality(model.fit_reduced, model.fit_labels, model.centres, model.centre_scales),
    )


def _scatter(n: int, parts: list[tuple[np.ndarray, Assignment]]) -> Assignment:
    """Combine assignments of disjoint row sets into one aligned with all n rows."""
    merged = {}
    for f in fields(Assignment):
        first = getattr(parts[0][1], f.name)
        merged[f.name] = np.zeros((n, *first.shape[1:]), dtype=first.dtype)
        for rows, part in parts:
            merged[f.name][rows] = getattr(part, f.name)
    return Assignment(**merged)


def fit_clusters(
    features: np.ndarray,
    cfg: ClusterConfig,
    *,
    on_stage: StageCallback | None = None,
    should_stop: StopCallback | None = None,
) -> ClusterResult:
    """Cluster (N, D) features; on_stage(stage, fraction) reports pca, umap, hdbscan, map and assign."""
    _check_input(features, cfg)
    start, start_cpu = time.perf_counter(), time.process_time()
    progress = _Progress(on_stage, should_stop, {})
    n, fit_idx = len(features), _sample(len(features), cfg)
    model, raw, kth = _fit_model(np.asarray(features[fit_idx], dtype=np.float32), cfg, progress)
    parts = [(fit_idx, _fitted_assignment(model, kth))]
    in_fit = np.zeros(n, dtype=bool)
    in_fit[fit_idx] = True
    rest = np.flatnonzero(~in_fit)
    if len(rest):
        with progress.stage("assign"):
            parts.append((rest, _assign(model, features, rest, progress)))
    full = _scatter(n, parts)
    raw_noise = np.zeros(n, dtype=bool)
    raw_noise[fit_idx] = raw < 0
    progress.timings["total"] = time.perf_counter() - start
    progress.timings["total_cpu"] = time.process_time() - start_cpu
    stats = {
        "n_clusters": float(model.n_clusters),
        "noise_share": float(np.mean(full.labels < 0)),
        "raw_noise_share": float(np.mean(raw < 0)),  # of the points HDBSCAN saw
        "fit_points": float(len(fit_idx)),
    }
    return ClusterResult(
        labels=full.labels,
        probabilities=full.probabilities,
        outlier_scores=full.outlier_scores,
        map_xy=full.map_xy,
        centrality=full.centrality,
        model=model,
        timings=progress.timings,
        raw_noise=raw_noise,
        in_fit_sample=in_fit,
        stats=stats,
    )


def _assign_chunk(model: ClusterModel, x: np.ndarray, seed: int) -> Assignment:
    """Place one chunk of (n, D) features: PCA, exact k-NN to the fit points, UMAP transform, k-NN vote."""
    cfg = model.config
    reduced = ops.apply_pca(x, model.pca_mean, model.pca_components)
    idx, dist = model.reduced_index().search(reduced, max(cfg.umap_neighbors, cfg.outlier_neighbors))
    knn_u = (idx[:, : cfg.umap_neighbors], dist[:, : cfg.umap_neighbors])
    ab = (float(model.umap_ab[0]), float(model.umap_ab[1]))
    emb = ops.umap_transform(*knn_u, model.fit_embedding, ab, cfg.transform_epochs, seed)
    if model.fit_map.shape[1]:
        map_ab = (float(model.map_ab[0]), float(model.map_ab[1]))
        map_xy = ops.umap_transform(*knn_u, model.fit_map, map_ab, cfg.transform_epochs, seed)
    else:
        map_xy = np.zeros((len(x), 0), dtype=np.float32)
    index, voters = model.vote_index()
    vidx, vdist = index.search(emb, cfg.reassign_neighbors)
    labels, probs = ops.knn_vote(model.fit_labels[voters][vidx], vdist, model.fit_probabilities[voters][vidx])
    kth = dist[:, cfg.outlier_neighbors - 1]
    if cfg.outlier_z is not None:
        outliers = ops.outlier_z(kth, *model.outlier_stats) > cfg.outlier_z
        labels[outliers], probs[outliers] = -1, 0.0
    return Assignment(
        labels=labels,
        probabilities=probs,
        map_xy=map_xy,
        embedding=emb,
        outlier_scores=ops.outlier_score(kth, float(model.outlier_stats[0])),
        centrality=ops.centrality(reduced, labels, model.centres, model.centre_scales),
    )


def _assign(
    model: ClusterModel, features: np.ndarray, rows: np.ndarray, progress: _Progress | None
) -> Assignment:
    """Assign features[rows] chunk by chunk (bounded memory, progress and stop checks between chunks)."""
    parts: list[Assignment] = []
    for i, start in enumerate(range(0, len(rows), _ASSIGN_CHUNK)):
        if progress is not None:
            progress.check()
            progress.report("assign", start / len(rows))
        chunk = np.asarray(features[rows[start : start + _ASSIGN_CHUNK]], dtype=np.float32)
        parts.append(_assign_chunk(model, chunk, model.config.seed + 1 + i))
    return Assignment(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Assignment)))


def assign_full(model: ClusterModel, features: np.ndarray) -> Assignment:
    """Place new (N, D) features into a fitted model without refitting (labels, map, scores, centrality)."""
    if len(features) == 0:
        dims = (model.fit_map.shape[1], model.fit_embedding.shape[1])
        empty = np.zeros(0, dtype=np.float32)
        return Assignment(
            np.zeros(0, dtype=np.int64),
            empty,
            np.zeros((0, dims[0]), np.float32),
            np.zeros((0, dims[1]), np.float32),
            empty,
            empty,
        )
    return _assign(model, features, np.arange(len(features)), None)


def assign_clusters(model: ClusterModel, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Provisional placement of new photos: (labels (N,), probabilities (N,), map_xy (N, map_dim))."""
    done = assign_full(model, features)
    return done.labels, done.probabilities, done.map_xy
