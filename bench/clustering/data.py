"""Data for bench.clustering: house photos with room labels, cached features, and synthetic feature sets."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.common.paths import RESULTS
from tests.shared_data import shared_data_dir

CACHE = RESULTS / "cache"
ROOMS = ("bathroom", "bedroom", "frontal", "kitchen")
HIST_HOG = "hist-hog"  # colour histogram + HOG baseline
_NAME = re.compile(r"^(\d+)_(bathroom|bedroom|frontal|kitchen)\.jpg$")


@dataclass
class Houses:
    """House photos with ground truth; `keep` drops repeated copies of one photo (first copy kept)."""

    paths: list[Path]
    rooms: np.ndarray  # (N,) int index into ROOMS
    houses: np.ndarray  # (N,) int house number
    keep: np.ndarray  # (N,) bool: first copy of each distinct photo
    dup_groups: int  # photo groups with more than one copy
    ambiguous: int  # copies dropped whose room label differs from the kept copy


def load_houses() -> Houses | None:
    """House photos sorted by name, or None when ../shared/data is absent."""
    root = shared_data_dir()
    if root is None:
        return None
    found = sorted((p for p in (root / "houses").glob("*.jpg") if _NAME.match(p.name)), key=lambda p: p.name)
    parsed = [_NAME.match(p.name) for p in found]
    rooms = np.array([ROOMS.index(m.group(2)) for m in parsed if m], dtype=np.int64)
    houses = np.array([int(m.group(1)) for m in parsed if m], dtype=np.int64)
    groups = _duplicate_groups(found)
    keep = np.zeros(len(found), dtype=bool)
    ambiguous, multi = 0, 0
    for members in groups:
        keep[members[0]] = True
        multi += len(members) > 1
        ambiguous += int(np.sum(rooms[members[1:]] != rooms[members[0]]))
    return Houses(found, rooms, houses, keep, multi, ambiguous)


def _thumb(path: Path) -> np.ndarray:
    """32x32 grey thumbnail, zero-mean unit-norm: equal for re-encoded or resized copies of one photo."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-6)


def _duplicate_groups(paths: list[Path], threshold: float = 0.97) -> list[list[int]]:
    """Groups of indices whose thumbnails correlate above threshold (the same photo, maybe re-encoded)."""
    cache = CACHE / "houses_thumbs.npy"
    if cache.exists() and len(np.load(cache)) == len(paths):
        thumbs = np.load(cache)
    else:
        thumbs = np.stack([_thumb(p) for p in paths])
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, thumbs)
    sim = thumbs @ thumbs.T
    parent = list(range(len(paths)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(sim > threshold, 1)), strict=True):
        parent[find(int(j))] = find(int(i))
    groups: dict[int, list[int]] = {}
    for i in range(len(paths)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def _hog(grey: np.ndarray, cell: int = 16, bins: int = 9) -> np.ndarray:
    """Dalal-Triggs HOG (unsigned gradients, 2x2-cell blocks, L2-Hys); OpenCV 5 dropped HOGDescriptor."""
    img = grey.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1)
    mag = np.hypot(gx, gy)
    ang = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    n = img.shape[0] // cell
    idx = np.minimum((ang / (180.0 / bins)).astype(np.int64), bins - 1)
    cells = np.zeros((n, n, bins), dtype=np.float32)
    cy, cx = np.divmod(np.arange(img.size), img.shape[1])
    np.add.at(cells, (cy // cell, cx // cell, idx.ravel()), mag.ravel())
    blocks = np.concatenate([cells[:-1, :-1], cells[1:, :-1], cells[:-1, 1:], cells[1:, 1:]], axis=2)
    blocks /= np.linalg.norm(blocks, axis=2, keepdims=True) + 1e-6
    blocks = np.minimum(blocks, 0.2)
    blocks /= np.linalg.norm(blocks, axis=2, keepdims=True) + 1e-6
    return blocks.ravel()


def hist_hog(paths: list[Path]) -> np.ndarray:
    """Baseline descriptor: HSV colour histogram (8x8x8) + HOG of a 128x128 grey image, each L2-normalised."""
    rows = []
    for path in paths:
        bgr = cv2.imread(str(path))
        hsv = cv2.cvtColor(cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 8], [0, 180, 0, 256, 0, 256]).ravel()
        grey = cv2.cvtColor(cv2.resize(bgr, (128, 128), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        parts = [np.sqrt(hist), _hog(grey)]  # root histogram: Hellinger-style comparison
        rows.append(np.concatenate([p / max(float(np.linalg.norm(p)), 1e-9) for p in parts]))
    out = np.stack(rows).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def house_features(name: str, paths: list[Path]) -> tuple[np.ndarray, float]:
    """Cached (N, dim) features of the photos for an encoder or the baseline; returns (features, photos/s)."""
    cache = CACHE / f"houses_{name}.npz"
    names = np.array([p.name for p in paths])
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            if np.array_equal(npz["names"], names):
                return npz["features"], float(npz["rate"])
    start = time.perf_counter()
    if name == HIST_HOG:
        feats = hist_hog(paths)
    else:
        import torch

        from search.ml.encoders.registry import load_encoder

        torch.set_num_threads(2)
        feats = load_encoder(name, device="cpu").embed_paths(paths, batch_size=16, num_workers=0)
    rate = len(paths) / (time.perf_counter() - start)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, features=feats, names=names, rate=rate)
    return feats, rate


def synthetic_features(
    n: int, dim: int = 1280, n_clusters: int = 40, seed: int = 0, outlier_share: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder-like vectors with cluster structure: (N, dim) unit rows and true labels (-1 = outlier).

    Clusters are Gaussian blobs in a 32-D latent space (unequal sizes and spreads) pushed through a fixed
    random linear map to `dim`, plus isotropic noise, then L2-normalised like encoder output.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n, p=sizes)
    labels[rng.random(n) < outlier_share] = -1
    centres = rng.normal(size=(n_clusters, 32)) * 4.0
    spread = rng.uniform(0.5, 1.2, size=n_clusters)
    lift = (rng.normal(size=(32, dim)) / np.sqrt(32)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):  # small chunks keep the generator's float64 temporaries small
        lab = labels[start : start + 20_000]
        latent = rng.normal(size=(len(lab), 32)) * np.where(lab >= 0, spread[lab], 1.0)[:, None]
        latent += np.where(lab[:, None] >= 0, centres[lab], rng.uniform(-12, 12, size=(len(lab), 32)))
        block = latent.astype(np.float32) @ lift + rng.normal(size=(len(lab), dim)).astype(np.float32) * 0.3
        out[start : start + len(lab)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, labels


if __name__ == "__main__":
    data = load_houses()
    if data is None:
        sys.exit("../shared/data is absent")
    for encoder in sys.argv[1:] or ["effnet-lite0", "effnet-lite2", HIST_HOG]:
        feats, rate = house_features(encoder, data.paths)
        print(json.dumps({"encoder": encoder, "shape": list(feats.shape), "photos_per_s": round(rate, 2)}))
