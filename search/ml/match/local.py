"""Local features (SIFT) and geometric verification of a query photo against one candidate."""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np
from PIL import Image

from search.ml.match.geometry import GeometryConfig, GeometryEvidence, fit_models

__all__ = [
    "LocalConfig",
    "LocalFeatures",
    "Verification",
    "extract_local",
    "extract_query_local",
    "match_descriptors",
    "root_sift",
    "verify",
]

_DESC_DIM = 128
# Stored blob: magic, feature count, frame width and height, then (N, 2) float32 points, (N, 128) uint8.
_MAGIC = b"FSL1"
_HEADER = "<4sIII"
_HEADER_SIZE = struct.calcsize(_HEADER)
# SIFT descriptors are 4x4 spatial cells x 8 orientation bins (index = (row*4 + col)*8 + bin).
_MIRROR_PERM = (
    np.arange(_DESC_DIM).reshape(4, 4, 8)[::-1][:, :, (-np.arange(8)) % 8].reshape(-1).astype(np.intp)
)


@dataclass(frozen=True)
class LocalConfig:
    """Feature extraction and verification settings (pixel thresholds are in the capped frame)."""

    max_side: int = 640
    n_features: int = 1000
    ratio: float = 0.8
    ransac_thresh: float = 3.0
    fundamental_thresh: float = 1.0
    ransac_iters: int = 2000
    confidence: float = 0.999
    min_matches: int = 8
    min_matches_epipolar: int = 20
    mutual: bool = True
    try_mirror: bool = True
    # A straight (unmirrored) match with this many affine inliers, explaining this share of the matches,
    # is an edited copy already: skip the mirror pass.
    mirror_skip_inliers: int = 40
    mirror_skip_ratio: float = 0.8
    # Verify with only the strongest features of each side (0 = all): matching cost grows with the square.
    verify_features: int = 500
    # Frame of an uploaded query's features (0 = max_side): SIFT's time grows with the pixels and, being
    # scale-invariant, a smaller query frame still matches the stored features.
    query_max_side: int = 0

    def geometry(self) -> GeometryConfig:
        """The RANSAC part of this config."""
        return GeometryConfig(
            ransac_thresh=self.ransac_thresh,
            fundamental_thresh=self.fundamental_thresh,
            ransac_iters=self.ransac_iters,
            confidence=self.confidence,
            min_matches=self.min_matches,
            min_matches_epipolar=self.min_matches_epipolar,
        )


@dataclass
class LocalFeatures:
    """SIFT keypoints (x, y) and uint8 descriptors of a photo, in its capped frame of image_size."""

    keypoints: np.ndarray  # (N, 2) float32
    descriptors: np.ndarray  # (N, 128) uint8
    image_size: tuple[int, int]  # (w, h) of the capped frame the keypoints live in

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def to_bytes(self) -> bytes:
        """Serialise as a fixed header plus the raw arrays (no pickle), for storage next to the photo."""
        head = struct.pack(_HEADER, _MAGIC, len(self), *self.image_size)
        points = np.ascontiguousarray(self.keypoints, dtype="<f4")
        return head + points.tobytes() + np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        """Inverse of to_bytes; also reads the np.savez blobs stored before it (raises ValueError)."""
        if data[:4] != _MAGIC:
            return cls._from_npz(data)
        if len(data) < _HEADER_SIZE:
            raise ValueError("local features blob shorter than its header")
        _, n, w, h = struct.unpack_from(_HEADER, data)
        if len(data) != _HEADER_SIZE + n * (8 + _DESC_DIM):
            raise ValueError(f"local features blob of {len(data)} bytes does not hold {n} features")
        # Views on the blob, no copy or checksum: a search reads ~30 of these (bench/README.md).
        points = np.frombuffer(data, dtype="<f4", count=2 * n, offset=_HEADER_SIZE).reshape(n, 2)
        desc = np.frombuffer(data, dtype=np.uint8, offset=_HEADER_SIZE + 8 * n).reshape(n, _DESC_DIM)
        return cls(keypoints=points.astype(np.float32, copy=False), descriptors=desc, image_size=(w, h))

    @classmethod
    def _from_npz(cls, data: bytes) -> LocalFeatures:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                w, h = (int(v) for v in arrays["image_size"])
                return cls(
                    keypoints=arrays["keypoints"].astype(np.float32),
                    descriptors=arrays["descriptors"],
                    image_size=(w, h),
                )
        # np.load's ways to refuse a blob: not a zip (it then refuses the pickle), a bad zip, missing arrays.
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a local features blob ({type(exc).__name__}: {exc})") from exc

    @cached_property
    def root(self) -> np.ndarray:
        """(N, 128) float32 RootSIFT of the descriptors, computed once per object."""
        return root_sift(self.descriptors)

    @cached_property
    def flipped(self) -> LocalFeatures:
        """mirrored(), computed once per object (a query is verified against many candidates)."""
        return self.mirrored()

    def strongest(self, n: int) -> LocalFeatures:
        """The first n features (extract_local stores them strongest first); all when n <= 0."""
        if n <= 0 or n >= len(self):
            return self
        return LocalFeatures(self.keypoints[:n], self.descriptors[:n], self.image_size)

    def mirrored(self) -> LocalFeatures:
        """Features of the horizontally mirrored photo, without re-extracting them."""
        points = self.keypoints.copy()
        points[:, 0] = self.image_size[0] - 1 - points[:, 0]
        # Mirroring flips the cell rows of the keypoint's rotated frame and negates relative orientation.
        return LocalFeatures(points, self.descriptors[:, _MIRROR_PERM], self.image_size)


@dataclass
class Verification:
    """Geometric evidence that a candidate shows the query's content; model says which fit won."""

    inliers: int
    matches: int
    inlier_ratio: float
    model: str  # "affine" | "homography" | "fundamental" | "none"
    mirrored: bool
    coverage: float  # share of the query's keypoint hull spanned by the inliers' hull
    affine_inliers: int = 0
    affine_residual: float = 0.0  # median reprojection error of the affine inliers, px
    affine_coverage: float = 0.0
    homography_inliers: int = 0
    fundamental_inliers: int = 0
    candidate_coverage: float = 0.0  # the same share on the candidate side
    scale: float = 0.0  # candidate px per query px under the affine fit
    rotation_deg: float = 0.0
    anisotropy: float = 0.0  # ratio of the affine's singular values (1 = similarity)

    def evidence(self) -> dict[str, float | int | str | bool]:
        """Flat evidence for display and logs."""
        return {k: v for k, v in self.__dict__.items() if isinstance(v, (int, float, str, bool))}


def _capped_grey(img: Image.Image, max_side: int) -> np.ndarray:
    grey = img.convert("L")
    scale = min(1.0, max_side / max(grey.size))
    if scale < 1.0:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)  # (H, W)


def extract_local(img: Image.Image, cfg: LocalConfig | None = None) -> LocalFeatures:
    """SIFT keypoints and descriptors of a photo scaled to at most cfg.max_side pixels."""
    cfg = cfg or LocalConfig()
    grey = _capped_grey(img, cfg.max_side)
    sift = cv2.SIFT.create(nfeatures=cfg.n_features)
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    size = (int(grey.shape[1]), int(grey.shape[0]))
    if descriptors is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, _DESC_DIM), np.uint8), size)
    # Strongest first, so a verifier can use a prefix when it wants to be faster.
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")
    points = np.array([keypoints[i].pt for i in order], dtype=np.float32)  # (N, 2)
    # OpenCV SIFT descriptors are integers clipped to 0..255, so uint8 storage is lossless.
    return LocalFeatures(points, np.clip(descriptors[order], 0, 255).astype(np.uint8), size)


def extract_query_local(img: Image.Image, cfg: LocalConfig | None = None) -> LocalFeatures:
    """The features verify() uses of an uploaded query: the strongest verify_features, on the query frame."""
    cfg = cfg or LocalConfig()
    side = cfg.query_max_side or cfg.max_side
    n = cfg.verify_features if 0 < cfg.verify_features < cfg.n_features else cfg.n_features
    # SIFT keeps the strongest n by response before computing descriptors: the same keypoints as the
    # prefix verify() would take of a full extraction, for a quarter less time (bench/README.md).
    return extract_local(img, replace(cfg, max_side=side, n_features=n))


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: L1-normalise then square-root, so the dot product is the Hellinger kernel."""
    desc = descriptors.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(desc)  # (N, 128), unit L2 norm


def match_descriptors(
    q: np.ndarray, c: np.ndarray, ratio: float, mutual: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Lowe ratio test (+ mutual nearest neighbour) on RootSIFT arrays; returns (q_idx, c_idx)."""
    if len(q) < 2 or len(c) < 2:
        empty = np.zeros(0, np.intp)
        return empty, empty
    sims = q @ c.T  # (Nq, Nc) cosine similarity
    rows = np.arange(len(q))
    # Two row-wise passes instead of argpartition: several times faster on these small matrices.
    best = sims.argmax(axis=1)
    s1 = sims[rows, best]
    sims[rows, best] = -np.inf
    s2 = sims.max(axis=1)
    sims[rows, best] = s1
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s1, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s2, 0.0))
    keep = d1 < ratio * d2
    if mutual and keep.any():
        # Column argmax only for the columns that survived the ratio test.
        kept = np.flatnonzero(keep)
        keep[kept] = sims[:, best[kept]].argmax(axis=0) == kept
    return rows[keep], best[keep]


def _verify_oriented(
    q: LocalFeatures,
    q_desc: np.ndarray,
    c: LocalFeatures,
    c_desc: np.ndarray,
    cfg: LocalConfig,
    mirrored: bool,
) -> Verification:
    qi, ci = match_descriptors(q_desc, c_desc, cfg.ratio, cfg.mutual)
    geo = fit_models(q.keypoints[qi], c.keypoints[ci], q.keypoints, c.keypoints, cfg.geometry())
    return _to_verification(geo, len(qi), mirrored)


def _to_verification(geo: GeometryEvidence, matches: int, mirrored: bool) -> Verification:
    return Verification(
        inliers=geo.inliers,
        matches=matches,
        inlier_ratio=geo.inliers / matches if matches else 0.0,
        model=geo.model,
        mirrored=mirrored,
        coverage=geo.coverage,
        affine_inliers=geo.affine_inliers,
        affine_residual=geo.affine_residual,
        affine_coverage=geo.affine_coverage,
        homography_inliers=geo.homography_inliers,
        fundamental_inliers=geo.fundamental_inliers,
        candidate_coverage=geo.candidate_coverage,
        scale=geo.scale,
        rotation_deg=geo.rotation_deg,
        anisotropy=geo.anisotropy,
    )


def _strength(v: Verification) -> tuple[int, int]:
    return (v.affine_inliers, v.inliers)


def verify(
    a: LocalFeatures, b: LocalFeatures, cfg: LocalConfig | None = None, *, mirror: bool | None = None
) -> Verification:
    """Match query a against candidate b (and mirrored a) and fit affine/homography/fundamental models.

    mirror=None follows cfg.try_mirror; False skips the mirrored pass (e.g. when the global search says the
    candidate is closer to the unflipped query).
    """
    cfg = cfg or LocalConfig()
    a, b = a.strongest(cfg.verify_features), b.strongest(cfg.verify_features)
    # a.root and a.flipped are cached on the query's object: computed once for all its candidates.
    b_desc = root_sift(b.descriptors)
    straight = _verify_oriented(a, a.root, b, b_desc, cfg, mirrored=False)
    try_mirror = cfg.try_mirror if mirror is None else mirror
    settled = straight.affine_inliers >= max(
        cfg.mirror_skip_inliers, cfg.mirror_skip_ratio * straight.matches
    )
    if not try_mirror or settled:
        return straight
    flipped = a.flipped
    flipped_result = _verify_oriented(flipped, flipped.root, b, b_desc, cfg, mirrored=True)
    return flipped_result if _strength(flipped_result) > _strength(straight) else straight
