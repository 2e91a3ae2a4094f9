"""Quick quality check behind the default preprocessing of effnet-lite0.

python -m bench.extract.extract_variants [--limit 200] [--sources 50] [--threads 2]
    [--configs squash:tf,crop:tf]

Compares resize (squash the full frame vs shorter side + centre crop), pooling (average vs GeM p=3) and input
normalisation (TensorFlow-Lite (x-127)/128 vs ImageNet mean/std) on the houses photos:
- near duplicates: re-encoded (half size, JPEG q50), mirrored, 80% and 60% crops and mirrored 90% crops of
  photos are searched among the originals: recall@1 and margin (cosine to the source minus the best other);
- semantics: room-type accuracy of the nearest photo from another house (what clustering relies on);
- same room: ScanNet views whose other view is the nearest among all originals and views.
Originals that are the same photo (the dataset holds real copies) count as one.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.common.paths import RESULTS
from bench.extract.extract import houses_photos
from search.ml.encoders.base import pool_features
from search.ml.encoders.builtin import EncoderOptions, build_effnet
from search.ml.images.loading import open_rgb
from tests.shared_data import shared_data_dir

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def reencode(img: Image.Image, _rng: np.random.Generator) -> Image.Image:
    small = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=50)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def crop(img: Image.Image, rng: np.random.Generator, keep: float = 0.8) -> Image.Image:
    w, h = img.size
    cw, ch = int(w * keep), int(h * keep)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((left, top, left + cw, top + ch))


TRANSFORMS: dict[str, Transform] = {
    "reencode": reencode,
    "mirror": lambda img, _rng: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "crop80": crop,
    "crop60": lambda img, rng: crop(img, rng, 0.6),
    "crop90_mirror": lambda img, rng: crop(img, rng, 0.9).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def same_photo_sets(images: list[Image.Image]) -> np.ndarray:
    """(N, N) bool: originals that are the same photo (16x16 grey thumbnails nearly equal)."""
    thumbs = np.stack([np.asarray(i.convert("L").resize((16, 16)), dtype=np.float32).ravel() for i in images])
    diff = np.abs(thumbs[:, None, :] - thumbs[None, :, :]).mean(axis=2)  # (N, N)
    return diff < 6.0


def embed_all(images: list[Image.Image], resize: str, norm: str) -> dict[str, np.ndarray]:
    """Embed with one trunk pass, pooled both ways: {"avg": (N, 1280), "gem": (N, 1280)}."""
    encoder = build_effnet(
        "effnet-lite0", torch.device("cpu"), EncoderOptions(resize=resize, normalisation=norm)
    )
    out: dict[str, list[np.ndarray]] = {"avg": [], "gem": []}
    for lo in range(0, len(images), 32):
        with torch.inference_mode():
            fmap = encoder.feature_map(encoder.prep_batch(images[lo : lo + 32]))  # (B, 1280, 7, 7)
            for pooling in out:
                out[pooling].append(F.normalize(pool_features(fmap, pooling)).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def near_duplicate_scores(
    db: np.ndarray, queries: np.ndarray, sources: np.ndarray, names: list[str], same: np.ndarray
) -> dict[str, dict[str, float]]:
    sims = queries @ db.T  # (Q, N)
    hit = same[sources, sims.argmax(axis=1)]
    to_source = sims[np.arange(len(sources)), sources]
    others = np.where(same[sources], np.nan, sims)
    best_other = np.nanmax(others, axis=1)
    spread = np.nanstd(others, axis=1)  # scale-free margin: in units of the query's unrelated-photo spread
    scores = {}
    for name in dict.fromkeys(names):
        rows = np.array([n == name for n in names])
        scores[name] = {
            "recall_at_1": round(float(hit[rows].mean()), 3),
            "cos_to_source": round(float(to_source[rows].mean()), 3),
            "margin": round(float((to_source - best_other)[rows].mean()), 3),
            "z_margin": round(float(((to_source - best_other) / spread)[rows].mean()), 2),
        }
    return scores


def room_accuracy(db: np.ndarray, houses: np.ndarray, rooms: np.ndarray, same: np.ndarray) -> float:
    sims = db @ db.T  # (N, N)
    sims[(houses[:, None] == houses[None, :]) | same] = -np.inf
    return round(float((rooms[sims.argmax(axis=1)] == rooms).mean()), 3)


def same_room_recall(db: np.ndarray, views: np.ndarray) -> float:
    """ScanNet: is the other view of the same room the nearest among the houses photos and all views?"""
    pool = np.concatenate([views, db])  # (2S + N, d); views come in scene pairs (0, 1), (2, 3), ...
    sims = views @ pool.T
    sims[np.arange(len(views)), np.arange(len(views))] = -np.inf
    partner = np.arange(len(views)) ^ 1
    return round(float((sims.argmax(axis=1) == partner).mean()), 3)


def scannet_views() -> list[Image.Image]:
    root = shared_data_dir()
    scenes = sorted((root / "multiview" / "scannet_pairs").iterdir()) if root else []
    return [open_rgb(f, 224) for scene in scenes if scene.is_dir() for f in sorted(scene.glob("*.jpg"))[:2]]


def run_variants(
    paths: list[Path], n_sources: int = 50, seed: int = 0, configs: list[tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Score (resize, normalisation) configs x (avg, GeM) pooling; prints a table and returns the rows."""
    rng = np.random.default_rng(seed)
    images = [open_rgb(p, 224) for p in paths]  # decoded as embed_paths does (JPEG draft at 224)
    views = scannet_views()
    houses = np.array([p.stem.split("_")[0] for p in paths])
    rooms = np.array([p.stem.split("_")[1] for p in paths])
    same = same_photo_sets(images)
    sources = rng.choice(len(paths), size=min(n_sources, len(paths)), replace=False)
    queries, query_src, names = [], [], []
    for name, transform in TRANSFORMS.items():
        for src in sources:
            queries.append(transform(images[src], rng))
            query_src.append(src)
            names.append(name)
    rows: list[dict[str, Any]] = []
    for resize, norm in configs or [(r, n) for r in ("squash", "crop") for n in ("tf", "imagenet")]:
        db, qs, vs = (embed_all(group, resize, norm) for group in (images, queries, views))
        for pooling in ("avg", "gem"):
            dup = near_duplicate_scores(db[pooling], qs[pooling], np.array(query_src), names, same)
            room = room_accuracy(db[pooling], houses, rooms, same)
            multiview = same_room_recall(db[pooling], vs[pooling]) if views else float("nan")
            rows.append(
                {
                    "resize": resize,
                    "norm": norm,
                    "pooling": pooling,
                    "room_1nn": room,
                    "scannet_r1": multiview,
                }
                | dup
            )
    print_variants(rows)
    return rows


def print_variants(rows: list[dict[str, Any]]) -> None:
    names = list(TRANSFORMS)
    print(
        f"{'resize':7} {'norm':8} {'pool':4} {'room1nn':>7} {'scanR1':>6} "
        + " ".join(f"{n + ' R@1/margin/z':>26}" for n in names)
    )
    for r in rows:
        cells = " ".join(
            f"{r[n]['recall_at_1']:>11.3f} / {r[n]['margin']:.3f} / {r[n]['z_margin']:5.2f}" for n in names
        )
        print(
            f"{r['resize']:7} {r['norm']:8} {r['pooling']:4} {r['room_1nn']:>7.3f} {r['scannet_r1']:>6.3f}",
            cells,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="effnet-lite0 preprocessing variants on the houses photos")
    parser.add_argument("--limit", type=int, default=200, help="originals (houses photos in order)")
    parser.add_argument(
        "--sources", type=int, default=50, help="originals turned into 4 near-duplicates each"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--configs", default="", help="resize:norm list, e.g. squash:tf,crop:tf (default all 4)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = [tuple(c.split(":")) for c in args.configs.split(",") if c] or None
    rows = run_variants(houses_photos(args.limit), args.sources, configs=configs)
    out = RESULTS / "extract_variants.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"photos": args.limit, "sources": args.sources, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
