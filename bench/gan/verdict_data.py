"""Photo sets and embedding for bench.gan: each photo decoded (and edited) once, embedded by every
encoder in the same pass and kept in memory; EfficientNet embeddings are also cached on disk."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common.match_levels import CACHE, Progress

Embedder = Callable[[list[Image.Image]], np.ndarray]
Loader = Callable[[], Image.Image]
Inspect = Callable[[Image.Image], Any]


@dataclass
class EncoderSpec:
    """An encoder under test: its batch function and, for deterministic pretrained ones, a cache tag."""

    name: str
    embed: Embedder
    cache_tag: str | None = None  # None: never cached (GAN checkpoints are cheap to embed and change)


@dataclass
class PhotoSet:
    """Keys of a set of photos and their (N, D) unit embeddings per encoder."""

    name: str
    keys: list[str]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    inspected: list[Any] = field(default_factory=list)  # per-photo result of the inspect callback


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    x = np.asarray(x, dtype=np.float32)
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Each part L2-normalised, concatenated, then re-normalised (equal weight per encoder)."""
    return unit_rows(np.hstack([unit_rows(p) for p in parts]))


def encoder_fingerprint(embed: Embedder) -> str:
    """Short digest of the encoder's output on two fixed synthetic photos: changes when the encoder does."""
    yy, xx = np.mgrid[0:192, 0:256]
    a = np.stack([xx % 256, yy * 255 // 191, (xx * yy) % 251], axis=2).astype(np.uint8)
    b = np.ascontiguousarray(255 - a[:, ::-1])
    emb = embed([Image.fromarray(a), Image.fromarray(b)])  # (2, D)
    return hashlib.sha1(np.round(emb, 3).tobytes(), usedforsecurity=False).hexdigest()[:10]


def _cache_path(spec: EncoderSpec, set_name: str, keys: Sequence[str]) -> Path:
    digest = hashlib.sha1("\n".join(keys).encode(), usedforsecurity=False).hexdigest()[:12]
    return CACHE / "gan_verdict" / f"{spec.name}_{spec.cache_tag}_{set_name}_{digest}.npy"


def _load_cached(spec: EncoderSpec, set_name: str, keys: Sequence[str]) -> np.ndarray | None:
    if spec.cache_tag is None:
        return None
    path = _cache_path(spec, set_name, keys)
    if not path.exists():
        return None
    x = np.load(path, allow_pickle=False)
    return x if len(x) == len(keys) else None


def _save_cached(spec: EncoderSpec, set_name: str, keys: Sequence[str], x: np.ndarray) -> None:
    if spec.cache_tag is None:
        return
    path = _cache_path(spec, set_name, keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, x)
    tmp.replace(path)


def _add(cost: dict[str, list[float]], name: str, seconds: float, photos: int) -> None:
    entry = cost.setdefault(name, [0.0, 0.0])
    entry[0] += seconds
    entry[1] += photos


def embed_set(
    name: str,
    items: Sequence[tuple[str, Loader]],
    encoders: Sequence[EncoderSpec],
    cost: dict[str, list[float]],
    inspect: Inspect | None = None,
    batch: int = 16,
) -> PhotoSet:
    """Embed (key, loader) items with every encoder.

    cost accumulates [CPU seconds, photos] per encoder and for "load" (decode + edit); cached sets add none.
    """
    keys = [k for k, _ in items]
    out = PhotoSet(name, keys)
    todo = []
    for spec in encoders:
        cached = _load_cached(spec, name, keys)
        if cached is None:
            todo.append(spec)
        else:
            out.vectors[spec.name] = cached
    if not todo and inspect is None:
        return out
    parts: dict[str, list[np.ndarray]] = {spec.name: [] for spec in todo}
    progress = Progress(f"{name} ({len(items)} photos)", every_s=60.0)
    for lo in range(0, len(items), batch):
        start = time.process_time()
        images = [load() for _, load in items[lo : lo + batch]]
        if inspect is not None:
            out.inspected += [inspect(img) for img in images]
        _add(cost, "load", time.process_time() - start, len(images))
        for spec in todo:
            start = time.process_time()
            parts[spec.name].append(unit_rows(spec.embed(images)))
            _add(cost, spec.name, time.process_time() - start, len(images))
        progress(min(lo + batch, len(items)), len(items))
    for spec in todo:
        x = np.concatenate(parts[spec.name]) if parts[spec.name] else np.zeros((0, 1), np.float32)
        out.vectors[spec.name] = x
        _save_cached(spec, name, keys, x)
    return out
