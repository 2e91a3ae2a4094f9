"""Photo clustering: encoder features -> PCA -> UMAP -> HDBSCAN, a 2-D UMAP map, and incremental assignment.

Noise policy (`noise_reassign="knn"`, the default): HDBSCAN's raw noise is mostly fringe members of real
clusters, so noise points are given the label of their nearest clustered neighbours in UMAP space; only
"real outliers" stay noise: photos whose k-NN distance in PCA space is far above the collection's typical
one (robust z > `outlier_z`). `noise_reassign="none"` keeps HDBSCAN's raw noise (outlier rule still applies).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import hdbscan
import numpy as np

from search.ml import cluster_ops as ops

StageCallback = Callable[[str, float], None]
StopCallback = Callable[[], bool]
MODEL_FORMAT = 1
_ASSIGN_CHUNK = 50_000


class FitCancelled(RuntimeError):
    """Raised by fit_clusters when should_stop() returns True."""


@dataclass(frozen=True)
class ClusterConfig:
    """Parameters of one clustering run (stored with the run)."""

    pca_dim: int = 50  # <= 0: no PCA
    umap_dim: int = 5
    umap_neighbors: int = 15
    umap_min_dist: float = 0.0
    umap_epochs: int | None = None  # None: umap's default (500 below 10k points, else 200)
    min_cluster_size: int = 20
    min_samples: int | None = None
    cluster_selection_epsilon: float = 0.0
    cluster_selection_method: str = "eom"
    map_dim: int = 2
    map_min_dist: float = 0.1
    seed: int = 0
    fit_sample: int | None = 50_000  # fit on a seeded sample of this size, assign the rest
    noise_reassign: str = "knn"  # "knn" | "none"
    reassign_neighbors: int = 10
    outlier_neighbors: int = 10
    outlier_z: float | None = 3.5  # None: never force outliers to noise
    transform_epochs: int = 100


def config_to_dict(cfg: ClusterConfig) -> dict[str, Any]:
    """Plain JSON-able dict of a config."""
    return asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> ClusterConfig:
    """Config from a dict; unknown keys are ignored so old runs keep loading."""
    known = {f.name for f in fields(ClusterConfig)}
    return ClusterConfig(**{k: v for k, v in data.items() if k in known})


@dataclass
class ClusterModel:
    """Everything needed to place new photos later; arrays only, saved as .npz without pickle."""

    config: ClusterConfig
    pca_mean: np.ndarray  # (D,)
    pca_components: np.ndarray  # (P, D); (0, D) = no PCA
    fit_reduced: np.ndarray  # (M, P) PCA features of the fitted points
    fit_embedding: np.ndarray  # (M, umap_dim)
    fit_map: np.ndarray  # (M, map_dim)
    fit_labels: np.ndarray  # (M,) final labels, -1 = noise
    fit_probabilities: np.ndarray  # (M,)
    umap_ab: np.ndarray  # (2,) UMAP curve parameters of the clustering embedding
    map_ab: np.ndarray  # (2,) same for the map
    outlier_stats: np.ndarray  # (2,) centre, scale of log k-NN distance in PCA space
    centres: np.ndarray  # (K, P)
    centre_scales: np.ndarray  # (K,)

    @property
    def n_clusters(self) -> int:
        """Number of clusters (labels 0..K-1)."""
        return len(self.centres)

    def to_bytes(self) -> bytes:
        """Serialise to .npz bytes (no pickle)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}
        buf = io.BytesIO()
        header = json.dumps({"format": MODEL_FORMAT, "config": config_to_dict(self.config)})
        np.savez_compressed(buf, header=np.array(header), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterModel:
        """Load from to_bytes() output; refuses pickled objects."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(str(npz["header"]))
            if header["format"] != MODEL_FORMAT:
                raise ValueError(f"unsupported cluster model format {header['format']}")
            arrays = {f.name: npz[f.name] for f in fields(cls) if f.name != "config"}
        return cls(config=config_from_dict(header["config"]), **arrays)

    def save(self, path: Path) -> None:
        """Write the model to `path` (exact name, no suffix added)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> ClusterModel:
        """Read a model written by save()."""
        return cls.from_bytes(Path(path).read_bytes())


@dataclass
class Assignment:
    """Placement of photos into a fitted model."""

    labels: np.ndarray  # (N,) int64, -1 = noise
    probabilities: np.ndarray  # (N,) float32
    map_xy: np.ndarray  # (N, map_dim) float32
    embedding: np.ndarray  # (N, umap_dim) float32
    outlier_scores: np.ndarray  # (N,) float32 in [0, 1)
    centrality: np.ndarray  # (N,) float32 in [0, 1]


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
        # one exact self-k-NN (column 0 is the point itself) serves both UMAPs and the outlier rule
        knn = ops.knn_search(reduced, reduced, max(cfg.umap_neighbors, cfg.outlier_neighbors + 1))
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
    return model, raw, kth


def fit_clusters(
    features: np.ndarray,
    cfg: ClusterConfig,
    *,
    on_stage: StageCallback | None = None,
    should_stop: StopCallback | None = None,
) -> ClusterResult:
    """Cluster (N, D) features; on_stage(stage, fraction) reports pca, umap, hdbscan, map and assign."""
    _check_input(features, cfg)
    total, total_cpu = time.perf_counter(), time.process_time()
    progress = _Progress(on_stage, should_stop, {})
    fit_idx = _sample(len(features), cfg)
    x_fit = np.asarray(features[fit_idx], dtype=np.float32)
    model, raw, kth = _fit_model(x_fit, cfg, progress)
    n = len(features)
    in_fit = np.zeros(n, dtype=bool)
    in_fit[fit_idx] = True
    rest = np.flatnonzero(~in_fit)
    labels = np.full(n, -1, dtype=np.int64)
    probs, scores, cent = (np.zeros(n, dtype=np.float32) for _ in range(3))
    map_xy = np.zeros((n, model.fit_map.shape[1]), dtype=np.float32)
    labels[fit_idx], probs[fit_idx], map_xy[fit_idx] = (
        model.fit_labels,
        model.fit_probabilities,
        model.fit_map,
    )
    scores[fit_idx] = ops.outlier_score(kth, float(model.outlier_stats[0]))
    cent[fit_idx] = ops.centrality(model.fit_reduced, model.fit_labels, model.centres, model.centre_scales)
    if len(rest):
        with progress.stage("assign"):
            done = _assign(model, features, rest, progress)
        labels[rest], probs[rest], map_xy[rest] = done.labels, done.probabilities, done.map_xy
        scores[rest], cent[rest] = done.outlier_scores, done.centrality
    raw_noise = np.zeros(n, dtype=bool)
    raw_noise[fit_idx] = raw < 0
    progress.timings["total"] = time.perf_counter() - total
    progress.timings["total_cpu"] = time.process_time() - total_cpu
    stats = {
        "n_clusters": float(model.n_clusters),
        "noise_share": float(np.mean(labels < 0)),
        "raw_noise_share": float(np.mean(raw < 0)),
        "fit_points": float(len(fit_idx)),
    }
    return ClusterResult(
        labels=labels,
        probabilities=probs,
        outlier_scores=scores,
        map_xy=map_xy,
        centrality=cent,
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
    idx, dist = ops.knn_search(model.fit_reduced, reduced, max(cfg.umap_neighbors, cfg.outlier_neighbors))
    knn_u = (idx[:, : cfg.umap_neighbors], dist[:, : cfg.umap_neighbors])
    ab = (float(model.umap_ab[0]), float(model.umap_ab[1]))
    emb = ops.umap_transform(*knn_u, model.fit_embedding, ab, cfg.transform_epochs, seed)
    if model.fit_map.shape[1]:
        map_ab = (float(model.map_ab[0]), float(model.map_ab[1]))
        map_xy = ops.umap_transform(*knn_u, model.fit_map, map_ab, cfg.transform_epochs, seed)
    else:
        map_xy = np.zeros((len(x), 0), dtype=np.float32)
    voters = np.flatnonzero(model.fit_labels >= 0) if cfg.noise_reassign == "knn" else np.arange(len(emb))
    voters = voters if len(voters) else np.arange(len(model.fit_labels))
    vidx, vdist = ops.knn_search(model.fit_embedding[voters], emb, cfg.reassign_neighbors)
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
