"""RANSAC model fits (affine, homography, fundamental) over putative matches, with coverage evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GeometryConfig:
    """RANSAC settings; thresholds in pixels of the capped frame."""

    ransac_thresh: float = 3.0
    fundamental_thresh: float = 1.0
    ransac_iters: int = 2000
    confidence: float = 0.999
    min_matches: int = 8
    # The simplest model whose inlier count reaches this share of the best count is reported.
    prefer_simple: float = 0.9
    # Homography / fundamental fits only run with this many matches (fewer can never reach the same-room
    # thresholds) and not when the affine fit already explains this share of the matches.
    min_matches_epipolar: int = 20
    affine_explains: float = 0.9


@dataclass
class GeometryEvidence:
    """Inlier counts of each model and where the inliers lie."""

    model: str = "none"
    inliers: int = 0
    coverage: float = 0.0
    candidate_coverage: float = 0.0
    affine_inliers: int = 0
    affine_residual: float = 0.0
    affine_coverage: float = 0.0
    homography_inliers: int = 0
    fundamental_inliers: int = 0
    scale: float = 0.0
    rotation_deg: float = 0.0
    anisotropy: float = 0.0


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (0 for fewer than 3)."""
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32).reshape(-1, 1, 2))
    return float(cv2.contourArea(hull))


def coverage(inlier_points: np.ndarray, all_points: np.ndarray) -> float:
    """Share of the hull of all keypoints spanned by the hull of the inliers (0..1)."""
    total = hull_area(all_points)
    return min(1.0, hull_area(inlier_points) / total) if total > 0 else 0.0


def _mask_count(mask: np.ndarray | None) -> tuple[int, np.ndarray]:
    if mask is None:
        return 0, np.zeros(0, bool)
    flat = mask.ravel().astype(bool)
    return int(flat.sum()), flat


def _fit_affine(qp: np.ndarray, cp: np.ndarray, cfg: GeometryConfig) -> tuple[np.ndarray | None, np.ndarray]:
    try:
        model, mask = cv2.estimateAffine2D(
            qp,
            cp,
            method=cv2.RANSAC,
            ransacReprojThreshold=cfg.ransac_thresh,
            maxIters=cfg.ransac_iters,
            confidence=cfg.confidence,
            refineIters=10,
        )
    except cv2.error:  # see _fit_homography
        model, mask = None, None
    if model is None:
        return None, np.zeros(len(qp), bool)
    return model, _mask_count(mask)[1]


def _affine_terms(model: np.ndarray) -> tuple[float, float, float]:
    """(scale, rotation in degrees, anisotropy) of the 2x2 linear part."""
    singular = np.linalg.svd(model[:, :2], compute_uv=False)
    scale = float(math.sqrt(abs(np.linalg.det(model[:, :2]))))
    rotation = math.degrees(math.atan2(float(model[1, 0] - model[0, 1]), float(model[0, 0] + model[1, 1])))
    anisotropy = float(singular[1] / singular[0]) if singular[0] > 0 else 0.0
    return scale, rotation, anisotropy


def _affine_evidence(
    qp: np.ndarray, cp: np.ndarray, q_all: np.ndarray, cfg: GeometryConfig, ev: GeometryEvidence
) -> np.ndarray:
    model, mask = _fit_affine(qp, cp, cfg)
    if model is None or not mask.any():
        return np.zeros(len(qp), bool)
    projected = qp @ model[:, :2].T + model[:, 2]  # (N, 2)
    residuals = np.linalg.norm(projected - cp, axis=1)
    ev.affine_inliers = int(mask.sum())
    ev.affine_residual = float(np.median(residuals[mask]))
    ev.affine_coverage = coverage(qp[mask], q_all)
    ev.scale, ev.rotation_deg, ev.anisotropy = _affine_terms(model)
    return mask


def _fit_homography(qp: np.ndarray, cp: np.ndarray, cfg: GeometryConfig) -> np.ndarray:
    try:
        _, mask = cv2.findHomography(
            qp, cp, cv2.USAC_MAGSAC, cfg.ransac_thresh, maxIters=cfg.ransac_iters, confidence=cfg.confidence
        )
    except cv2.error:  # USAC asserts on some degenerate samples (e.g. many collinear points): no model
        mask = None
    return _mask_count(mask)[1] if mask is not None else np.zeros(len(qp), bool)


def _fit_fundamental(qp: np.ndarray, cp: np.ndarray, cfg: GeometryConfig) -> np.ndarray:
    try:
        _, mask = cv2.findFundamentalMat(
            qp, cp, cv2.USAC_MAGSAC, cfg.fundamental_thresh, cfg.confidence, cfg.ransac_iters
        )
    except cv2.error:  # see _fit_homography
        mask = None
    return _mask_count(mask)[1] if mask is not None else np.zeros(len(qp), bool)


def fit_models(
    qp: np.ndarray, cp: np.ndarray, q_all: np.ndarray, c_all: np.ndarray, cfg: GeometryConfig
) -> GeometryEvidence:
    """Fit affine, homography and fundamental models to matched points; report the simplest adequate one."""
    ev = GeometryEvidence()
    if len(qp) < cfg.min_matches:
        return ev
    qp, cp = qp.astype(np.float32), cp.astype(np.float32)
    masks = {"affine": _affine_evidence(qp, cp, q_all, cfg, ev)}
    explained = ev.affine_inliers >= cfg.affine_explains * len(qp)
    if len(qp) >= cfg.min_matches_epipolar and not explained:
        masks["homography"] = _fit_homography(qp, cp, cfg)
        masks["fundamental"] = _fit_fundamental(qp, cp, cfg)
    else:
        # Not fitted: an affine map is also a homography and satisfies some fundamental matrix.
        masks["homography"] = masks["fundamental"] = masks["affine"]
    ev.homography_inliers = int(masks["homography"].sum())
    ev.fundamental_inliers = int(masks["fundamental"].sum())
    best = max(int(m.sum()) for m in masks.values())
    if best == 0:
        return ev
    # Models go from most to least constrained; the first that explains nearly as much as the best wins.
    ev.model = next(name for name, m in masks.items() if m.sum() >= cfg.prefer_simple * best)
    chosen = masks[ev.model]
    ev.inliers = int(chosen.sum())
    ev.coverage = coverage(qp[chosen], q_all)
    ev.candidate_coverage = coverage(cp[chosen], c_all)
    return ev
