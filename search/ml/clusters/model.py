"""Stored state of a clustering run: its config and the fitted model (arrays only, .npz without pickle)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from search.ml import config as _config
from search.ml.clusters.ops import KnnIndex

MODEL_FORMAT = 1


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
    transform_epochs: int = 30  # SGD epochs placing new photos in the embeddings (0: weighted mean only)


def config_to_dict(cfg: ClusterConfig) -> dict[str, Any]:
    """Plain JSON-able dict of a config (search.ml.config convention)."""
    return _config.config_to_dict(cfg)


def config_from_dict(data: dict[str, Any]) -> ClusterConfig:
    """Config from a stored dict; missing keys keep their defaults, unknown keys are refused."""
    return _config.config_from_dict(ClusterConfig, data)


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
    # k-NN indexes over the fit points, built on first use and never saved
    _indexes: dict[str, KnnIndex] = field(default_factory=dict, init=False, repr=False, compare=False)

    def reduced_index(self) -> KnnIndex:
        """k-NN index over the fit points in PCA space (UMAP transform, outlier distances)."""
        if "reduced" not in self._indexes:
            self._indexes["reduced"] = KnnIndex(self.fit_reduced, seed=self.config.seed)
        return self._indexes["reduced"]

    def vote_index(self) -> tuple[KnnIndex, np.ndarray]:
        """k-NN index over the voting fit points in the UMAP embedding, and their rows."""
        # "knn" policy: new photos vote among clustered fit points only; "none": noise can win the vote
        voters = np.flatnonzero(self.fit_labels >= 0)
        if self.config.noise_reassign != "knn" or len(voters) == 0:
            voters = np.arange(len(self.fit_labels))
        if "vote" not in self._indexes:
            self._indexes["vote"] = KnnIndex(self.fit_embedding[voters], seed=self.config.seed)
        return self._indexes["vote"], voters

    @property
    def n_clusters(self) -> int:
        """Number of clusters (labels 0..K-1)."""
        return len(self.centres)

    def to_bytes(self) -> bytes:
        """Serialise to .npz bytes (no pickle)."""
        arrays = {name: getattr(self, name) for name in _array_fields()}
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
            arrays = {name: npz[name] for name in _array_fields()}
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


def _array_fields() -> list[str]:
    """ClusterModel fields stored in the .npz (everything but the config and caches)."""
    return [f.name for f in fields(ClusterModel) if f.name != "config" and not f.name.startswith("_")]
