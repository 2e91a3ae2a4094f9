"""Fréchet distance between Gaussians fitted to two feature sets (FID-style; FD-Lite on EfficientNet-Lite)."""

from __future__ import annotations

import numpy as np


def _stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need an (N >= 2, D) feature array, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    # Symmetric PSD square root by eigendecomposition; tiny negative eigenvalues are rounding noise.
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) for two (N, D) feature sets.

    Uses only symmetric eigendecompositions, so it stays real and finite for the rank-deficient
    covariances of small sample sets (N < D). Values from different N are not comparable (FD is biased in N).
    """
    mu_a, s_a = _stats(feats_a)
    mu_b, s_b = _stats(feats_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dims differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    root_a = _psd_sqrt(s_a)
    inner = root_a @ s_b @ root_a  # symmetric PSD, same trace-sqrt as S_a S_b
    w = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_covmean)
    return max(fd, 0.0)
