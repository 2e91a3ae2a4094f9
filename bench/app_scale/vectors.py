"""Synthetic feature vectors with cluster structure (pure numpy, seeded, generated chunk by chunk)."""

from __future__ import annotations

import zlib

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) rows scaled to unit length, float32."""
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12), dtype=np.float32)


def stream_rng(seed: int, stream: str, start: int) -> np.random.Generator:
    """A generator fixed by (seed, stream name, first row): a rerun makes the same rows for the same chunk."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode()), start])


def cluster_centres(base: np.ndarray, count: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(count, D) unit centres: random rows of ``base`` (real features) moved by noise of norm ~spread.

    Starting from real vectors keeps the synthetic collection in the same region as the real one, so the
    collection mean (the index's centre) behaves as with real photos; the noise keeps centres apart.
    """
    base = unit_rows(base)
    if base.ndim != 2 or base.shape[0] == 0 or count < 1:
        raise ValueError(f"need a non-empty (B, D) base and count >= 1, got {base.shape} and {count}")
    dim = base.shape[1]
    picks = rng.integers(0, base.shape[0], size=count)
    noise = rng.standard_normal((count, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
    return unit_rows(base[picks] + noise)


def synthetic_rows(centres: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(n, D) unit vectors: a random centre each plus gaussian noise of norm ~noise."""
    dim = centres.shape[1]
    picks = rng.integers(0, centres.shape[0], size=n)
    jitter = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(noise / np.sqrt(dim))
    return unit_rows(centres[picks] + jitter)


def synthetic_chunk(
    centres: np.ndarray, start: int, n: int, *, noise: float, seed: int, stream: str
) -> np.ndarray:
    """Rows start..start+n of one stream (an encoder's synthetic photos, or its held-out queries)."""
    return synthetic_rows(centres, n, noise, stream_rng(seed, stream, start))
