"""Built-in evaluation of an encoder on a labelled sample of the collection (pure numpy / PIL / sklearn).

Two measures, both from embeddings the encoder makes now:
- near-duplicate recall@1: every sampled photo gets edited copies (crop, mirror, JPEG, letterbox, brightness,
  rotation, text); each copy is searched among the embeddings of all sampled photos, and counts as found when
  its own original is the top hit;
- room-type agreement, where photos carry a room tag: k-NN room purity and the ARI of a KMeans
  (k = number of tags) against the tags.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from search.ml.images.edits import EDITS, apply_edit

EmbedFn = Callable[[list[Image.Image]], np.ndarray]  # images -> (N, D) float32, unit rows
StepFn = Callable[[int, int], None]  # (done, total) embedded images
StopFn = Callable[[], bool]


class EvaluationStopped(RuntimeError):
    """should_stop() asked the evaluation to stop; nothing was measured."""


@dataclass(frozen=True)
class EvalConfig:
    """What the evaluation does; recorded with its result."""

    seed: int = 0
    knn: int = 5
    min_tagged: int = 20  # fewer tagged photos give room measures too noisy to compare encoders by
    batch: int = 32
    edits: tuple[str, ...] = field(default_factory=lambda: tuple(EDITS))


def sample_indices(total: int, size: int, seed: int) -> list[int]:
    """A seeded, sorted choice of min(size, total) positions out of range(total)."""
    if size < 1:
        raise ValueError(f"sample size must be at least 1, got {size}")
    return sorted(random.Random(seed).sample(range(total), min(size, total)))  # noqa: S311 (sampling, not crypto)  # nosec B311


def _embed_all(
    embed: EmbedFn, images: Sequence[Image.Image], cfg: EvalConfig, tick: Callable[[int], None]
) -> np.ndarray:
    parts = []
    for lo in range(0, len(images), cfg.batch):
        chunk = list(images[lo : lo + cfg.batch])
        vectors = np.asarray(embed(chunk), dtype=np.float32)  # (B, D)
        if vectors.ndim != 2 or len(vectors) != len(chunk):
            raise ValueError(f"embed returned shape {vectors.shape} for {len(chunk)} images; expected (B, D)")
        parts.append(vectors)
        tick(len(chunk))
    return np.concatenate(parts)


class _Progress:
    """Counts embedded images for on_step and honours should_stop between batches."""

    def __init__(self, total: int, on_step: StepFn | None, should_stop: StopFn | None) -> None:
        self.done, self.total, self.on_step, self.should_stop = 0, total, on_step, should_stop

    def __call__(self, n: int) -> None:
        self.done += n
        if self.on_step is not None:
            self.on_step(self.done, self.total)
        if self.should_stop is not None and self.should_stop():
            raise EvaluationStopped(f"stopped after {self.done} of {self.total} images")


def _top1(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(Q,) position in base of each query's nearest neighbour by inner product (first one on ties)."""
    return np.asarray(np.argmax(queries @ base.T, axis=1))


def near_duplicate_recall(
    embed: EmbedFn,
    images: Sequence[Image.Image],
    base: np.ndarray,
    cfg: EvalConfig,
    tick: Callable[[int], None],
) -> dict[str, Any]:
    """Recall@1 of edited copies searched among the originals' embeddings, per edit kind and overall."""
    truth = np.arange(len(images))
    per_edit: dict[str, float] = {}
    hits = 0
    for kind in cfg.edits:
        # One generator per (seed, photo, edit): a copy does not change when other edits are added.
        rngs = [random.Random(f"{cfg.seed}:{i}:{kind}") for i in range(len(images))]  # noqa: S311 (edits, not crypto)  # nosec B311
        copies = [apply_edit(img, kind, rng) for img, rng in zip(images, rngs, strict=True)]
        found = _top1(_embed_all(embed, copies, cfg, tick), base) == truth
        per_edit[kind] = float(found.mean())
        hits += int(found.sum())
    worst = min(per_edit, key=lambda k: (per_edit[k], k))
    return {
        "recall_at_1": hits / (len(images) * len(cfg.edits)),
        "per_edit": per_edit,
        "worst_edit": worst,
        "worst_recall": per_edit[worst],
        "queries": len(images) * len(cfg.edits),
        "distractors": len(images),
    }


def knn_purity(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean share of each vector's k nearest neighbours (inner product, itself excluded) with its label."""
    sims = vectors @ vectors.T  # (N, N)
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(vectors) - 1)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # (N, k)
    return float(np.mean(labels[nearest] == labels[:, None]))


def room_agreement(vectors: np.ndarray, tags: Sequence[str], cfg: EvalConfig) -> dict[str, Any]:
    """k-NN room purity and KMeans ARI against the tags of tagged rows ("" = untagged), or a skip reason."""
    keep = np.array([bool(t) for t in tags], dtype=bool)
    names = sorted({t for t in tags if t})
    base: dict[str, Any] = {"tagged": int(keep.sum()), "tags": len(names)}
    if len(names) < 2:
        return {**base, "skipped": f"needs at least 2 room tags among the sampled photos, found {len(names)}"}
    if keep.sum() < cfg.min_tagged:
        return {**base, "skipped": f"needs at least {cfg.min_tagged} tagged photos, found {int(keep.sum())}"}
    x = vectors[keep]
    labels = np.array([names.index(t) for t in tags if t])
    with warnings.catch_warnings():
        # An encoder mapping many photos to one point leaves clusters empty; that is a result, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        found = KMeans(n_clusters=len(names), random_state=cfg.seed, n_init=10).fit_predict(x)
    return {
        **base,
        "knn": cfg.knn,
        "knn_purity": knn_purity(x, labels, cfg.knn),
        "ari": float(adjusted_rand_score(labels, found)),
        "counts": {name: int((labels == i).sum()) for i, name in enumerate(names)},
    }


def evaluate(
    embed: EmbedFn,
    images: Sequence[Image.Image],
    tags: Sequence[str],
    cfg: EvalConfig | None = None,
    *,
    on_step: StepFn | None = None,
    should_stop: StopFn | None = None,
) -> dict[str, Any]:
    """Near-duplicate recall and room agreement of one encoder on sampled RGB photos and their tags."""
    cfg = cfg or EvalConfig()
    if len(images) < 2:
        raise ValueError(f"the evaluation needs at least 2 photos, got {len(images)}")
    if len(tags) != len(images):
        raise ValueError(f"{len(tags)} tags for {len(images)} photos")
    unknown = [k for k in cfg.edits if k not in EDITS]
    if unknown or not cfg.edits:
        raise ValueError(f"unknown or no edit kinds {unknown}; choose from {', '.join(EDITS)}")
    tick = _Progress(len(images) * (1 + len(cfg.edits)), on_step, should_stop)
    base = _embed_all(embed, images, cfg, tick)  # (N, D)
    return {
        "photos": len(images),
        "near_duplicate": near_duplicate_recall(embed, images, base, cfg, tick),
        "room": room_agreement(base, tags, cfg),
    }
