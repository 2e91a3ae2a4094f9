"""Same-room evaluation set built from ../shared/data, split by room, and the retrieval ideas run on it.

python -m bench.same_room.eval_set [--part test|calibration|all] [--json OUT] [--seed 0] [--boot 2000]

Sources (every room's photos are read from ../shared/data at run time, never copied):
- scannet: 15 ScanNet rooms x 2 views; angle gap = rotation of the ground-truth relative pose (32-172 deg);
- tum: 17 TUM fr3 office frames, one room, 136 pairs; no trajectory is shipped, so the pairs are bucketed by
  their time gap (dt<2s, dt2-5s, dt>=5s of a hand-held camera) instead of an angle;
- relisting: the kitchens of houses 9 and 21 and of houses 12 and 32: one kitchen photographed from another
  spot in two listings of one property. Found from the cross-house near-identical photos (Lite0 cosine
  >= 0.95: houses 9/21, 10/27, 11/30, 12/32, 59/72), then checked by eye; the other rooms of those
  listings are either identical photos or different rooms;
- houses_pan3 / houses_pan2 (simulated): half-width crops of each interior photo (bathroom, bedroom,
  kitchen), a camera pan of about 21 deg (neighbours, half overlapping) or 42 deg (left-right, no shared
  pixel) at an assumed 75 deg horizontal field of view. Houses 101-150 give left, centre and right crops
  (the centre bridges the wide pair, as a third photo of a room would); houses 151-200 give left and right
  only, so the wide pair has no bridge. Those originals, and any near-identical copy of them elsewhere, are
  left out of the collection (each contains its crops).
Distractors: every other Houses photo (houses 1-100 and all frontal photos). The collection is the whole set
(both parts) plus those; queries are the chosen part's photos. Parts are fixed by a seeded hash of the room
(of the house for the pans, so no house is in both parts). The ideas' settings are chosen on the
calibration part by the macro recall@5 over sources, then reported on the test part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common.match_levels import CACHE, MACHINE, Progress
from bench.common.paths import RESULTS
from bench.same_room import retrieval
from bench.same_room.eval_report import Query, format_table, macro_recall, recall_table
from search.ml.match.levels import LevelThresholds

ENCODERS = ("effnet-lite0", "effnet-lite2")
# Left edge of each half-width crop, per source: pan3 rooms have a bridging centre view, pan2 rooms do not.
PAN_CROPS = {
    "houses_pan3": (range(101, 151), {"L": 0.0, "C": 0.25, "R": 0.5}),
    "houses_pan2": (range(151, 201), {"L": 0.0, "R": 0.5}),
}
INTERIORS = ("bathroom", "bedroom", "kitchen")
POOLS = {"real": ("scannet", "tum", "relisting"), "simulated": tuple(PAN_CROPS)}
PAN_HFOV_DEG = 75.0  # assumed: listing photos are shot wide
RELISTINGS = {
    "relisting_9_21_kitchen": ("9_kitchen.jpg", "21_kitchen.jpg"),
    "relisting_12_32_kitchen": ("12_kitchen.jpg", "32_kitchen.jpg"),
}
BUCKETS = ((15.0, "<15"), (30.0, "15-30"), (60.0, "30-60"), (90.0, "60-90"), (math.inf, ">=90"))
TIME_BUCKETS = ((2.0, "<2s"), (5.0, "2-5s"), (math.inf, ">=5s"))
DUPLICATE_COSINE = 0.95  # Lite0 cosine above which two listing photos are one photo re-encoded


@dataclass(frozen=True)
class Photo:
    """One photo of the set: where to read it, which room it shows and how to find its angle gaps."""

    key: str
    path: Path
    room: str
    source: str
    group: str  # what the split hashes: the room, or the house for the simulated pans
    crop: float | None = None  # left edge of a half-width crop, as a fraction of the width
    yaw: float | None = None  # degrees, simulated pans only


@dataclass
class EvalSet:
    """The set's photos, the distractor photos and the gap bucket of every same-room pair with a known gap."""

    photos: list[Photo]
    distractors: list[Photo]
    gaps: dict[frozenset[str], str] = field(default_factory=dict)


def part_of(group: str, seed: int = 0) -> str:
    """'calibration' or 'test' from a seeded hash of the group (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return "test" if digest[0] % 2 == 0 else "calibration"


def bucket(gap: float | None) -> str:
    """Angle-gap bucket label of a gap in degrees."""
    if gap is None:
        return "unknown"
    return next(name for top, name in BUCKETS if gap < top)


def rotation_deg(rot: np.ndarray) -> float:
    """Angle of a 3x3 rotation matrix in degrees."""
    return math.degrees(math.acos(float(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))))


def scannet_photos(root: Path) -> tuple[list[Photo], dict[frozenset[str], str]]:
    """ScanNet views and each pair's ground-truth rotation."""
    base = root / "multiview" / "scannet_pairs"
    photos = [
        Photo(f"scannet/{p.name}", p, p.parent.name, "scannet", p.parent.name)
        for p in sorted(base.glob("*/*.jpg"))
    ]
    gaps: dict[frozenset[str], str] = {}
    for line in (base / "pairs_with_gt.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) < 38:
            continue
        pose = np.array([float(v) for v in parts[-16:]]).reshape(4, 4)
        gaps[frozenset((f"scannet/{parts[0]}", f"scannet/{parts[1]}"))] = bucket(rotation_deg(pose[:3, :3]))
    return photos, gaps


def tum_photos(root: Path) -> tuple[list[Photo], dict[frozenset[str], str]]:
    """TUM frames (one room) and each pair's time-gap bucket (the set ships no trajectory)."""
    paths = sorted((root / "multiview" / "tum_fr3_sequence").glob("*/*.png"))
    photos = [Photo(f"tum/{p.name}", p, "tum_" + p.parent.name, "tum", "tum_" + p.parent.name) for p in paths]
    gaps: dict[frozenset[str], str] = {}
    for i, a in enumerate(photos):
        for b in photos[i + 1 :]:
            gaps[frozenset((a.key, b.key))] = time_bucket(abs(float(a.path.stem) - float(b.path.stem)))
    return photos, gaps


def time_bucket(seconds: float) -> str:
    """Time-gap bucket of two frames of one hand-held sequence (the proxy for their angle gap)."""
    return next(f"dt{name}" for top, name in TIME_BUCKETS if seconds < top)


def house_photos(root: Path) -> tuple[list[Photo], list[Photo]]:
    """(relisting and houses_pan photos, candidate distractor photos) from the 800 listing photos."""
    folder = root / "houses"
    relisted = {
        name: room for room, names in RELISTINGS.items() for name in names if (folder / name).exists()
    }
    photos = [Photo(f"houses/{n}", folder / n, relisted[n], "relisting", relisted[n]) for n in relisted]
    focal = 0.5 / math.tan(math.radians(PAN_HFOV_DEG) / 2)  # in widths
    distractors: list[Photo] = []
    for path in sorted(folder.glob("*.jpg"), key=lambda p: (int(p.stem.split("_")[0]), p.stem)):
        house, kind = int(path.stem.split("_")[0]), path.stem.split("_")[1]
        pan = [(src, crops) for src, (houses, crops) in PAN_CROPS.items() if house in houses]
        if pan and kind in INTERIORS:
            source, crops = pan[0]
            for tag, left in crops.items():
                yaw = math.degrees(math.atan((left + 0.25 - 0.5) / focal))
                key = f"houses_pan/{path.name}#{tag}"
                photos.append(Photo(key, path, path.stem, source, f"house:{house}", left, yaw))
        elif path.name not in relisted:
            distractors.append(Photo(f"houses/{path.name}", path, f"listing:{path.stem}", "distractor", ""))
    return photos, distractors


def build(data_dir: Path) -> EvalSet:
    """The whole set (both parts), unfiltered distractors and every pair's angle gap."""
    scannet, gaps = scannet_photos(data_dir)
    tum, tum_gaps = tum_photos(data_dir)
    houses, distractors = house_photos(data_dir)
    gaps.update(tum_gaps)
    pan: dict[str, list[Photo]] = defaultdict(list)
    for p in houses:
        if p.yaw is not None:
            pan[p.room].append(p)
    for views in pan.values():
        for i, a in enumerate(views):
            for b in views[i + 1 :]:
                assert a.yaw is not None and b.yaw is not None
                gaps[frozenset((a.key, b.key))] = bucket(abs(a.yaw - b.yaw))
    return EvalSet([*scannet, *tum, *houses], distractors, gaps)


def load_image(photo: Photo) -> Image.Image:
    """The photo as RGB, cropped to its half-width window when it is a simulated pan view."""
    with Image.open(photo.path) as img:
        rgb = img.convert("RGB")
    if photo.crop is None:
        return rgb
    w, h = rgb.size
    return rgb.crop((round(photo.crop * w), 0, round((photo.crop + 0.5) * w), h))


def embeddings(photos: Sequence[Photo], encoder_name: str) -> np.ndarray:
    """(N, D) float32 embeddings with the app's encoder on CPU, cached per key in bench/results/cache/."""
    path = CACHE / f"eval_set_{encoder_name}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            cached = dict(zip(z["keys"].tolist(), z["emb"], strict=True))
    missing = [p for p in photos if p.key not in cached]
    if missing:
        import torch

        from search.ml.encoders.registry import load_encoder

        torch.set_num_threads(1)
        encoder = load_encoder(encoder_name, device="cpu")
        progress = Progress(f"eval set {encoder_name}")
        for lo in range(0, len(missing), 16):
            chunk = missing[lo : lo + 16]
            emb = encoder.embed_images([load_image(p) for p in chunk], batch_size=16)
            cached.update({p.key: np.asarray(e, dtype=np.float32) for p, e in zip(chunk, emb, strict=True)})
            progress(lo + len(chunk), len(missing))
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(cached)
        np.savez(path, keys=np.array(keys), emb=np.stack([cached[k] for k in keys]))
    return np.stack([cached[p.key] for p in photos]).astype(np.float32)


def collection(data_dir: Path) -> tuple[EvalSet, list[Photo], dict[str, np.ndarray], int]:
    """(set, collection photos, {encoder: (N, D) embeddings}, distractors dropped as pan-source copies)."""
    es = build(data_dir)
    pan_sources = sorted({p.path for p in es.photos if p.yaw is not None})
    originals = [Photo(f"houses/{p.name}", p, "", "", "") for p in pan_sources]
    emb = {name: embeddings([*es.photos, *es.distractors, *originals], name) for name in ENCODERS}
    n_set, n_dis = len(es.photos), len(es.distractors)
    lite0 = retrieval.unit(emb[ENCODERS[0]])
    copy_of_source = (lite0[n_set : n_set + n_dis] @ lite0[n_set + n_dis :].T).max(axis=1) >= DUPLICATE_COSINE
    keep = [i for i in range(n_set + n_dis) if i < n_set or not copy_of_source[i - n_set]]
    photos = [*es.photos, *es.distractors]
    return es, [photos[i] for i in keep], {k: v[keep] for k, v in emb.items()}, int(copy_of_source.sum())


def queries_of(es: EvalSet, photos: Sequence[Photo], part: str, seed: int) -> list[Query]:
    """Query records of the part's photos (indices into the collection), positives with their gap buckets."""
    rooms: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(photos):
        if p.source != "distractor":
            rooms[p.room].append(i)
    out = []
    for i, p in enumerate(photos):
        if p.source == "distractor" or (part != "all" and part_of(p.group, seed) != part):
            continue
        pos = tuple(j for j in rooms[p.room] if j != i)
        gaps = tuple(es.gaps.get(frozenset((p.key, photos[j].key)), "unknown") for j in pos)
        out.append(Query(i, p.room, p.source, pos, gaps))
    return out


def set_sizes(es: EvalSet, seed: int) -> dict[str, dict[str, dict[str, int]]]:
    """{source: {part: {"rooms", "photos", "pairs"}}}."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    by: dict[tuple[str, str], list[Photo]] = defaultdict(list)
    for p in es.photos:
        by[(p.source, part_of(p.group, seed))].append(p)
    for (source, part), photos in sorted(by.items()):
        rooms: dict[str, int] = defaultdict(int)
        for p in photos:
            rooms[p.room] += 1
        pairs = sum(n * (n - 1) // 2 for n in rooms.values())
        out[source][part] = {"rooms": len(rooms), "photos": len(photos), "pairs": pairs}
    return dict(out)


Scorer = Callable[[Sequence[int]], np.ndarray]


def choose(
    name: str, grid: Sequence[dict[str, Any]], make: Callable[..., Scorer], calib: Sequence[Query]
) -> tuple[dict[str, Any], Scorer, dict[str, float]]:
    """The grid setting with the best calibration macro recall@5 (first on ties), its scorer, every score."""
    seen: dict[str, float] = {}
    best: tuple[float, dict[str, Any], Scorer] | None = None
    idx = [q.index for q in calib]
    for setting in grid:
        scorer = make(**setting)
        score = macro_recall(recall_table(scorer(idx), calib, n_boot=1))
        seen[json.dumps(setting)] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, setting, scorer)
    assert best is not None, f"empty grid for {name}"
    return best[1], best[2], seen


def methods(emb: dict[str, np.ndarray], calib: Sequence[Query]) -> tuple[dict[str, Scorer], dict[str, Any]]:
    """{method: scorer} with the ideas' settings chosen on the calibration queries, and those choices."""
    lite0, lite2 = emb[ENCODERS[0]], emb[ENCODERS[1]]
    t = LevelThresholds()
    c0 = retrieval.unit(lite0 - lite0.mean(axis=0))
    c2 = retrieval.unit(lite2 - lite2.mean(axis=0))
    centred = retrieval.joint(c0, c2, t.rerank_lite2_weight)
    out: dict[str, Scorer] = {
        "cosine_lite0": lambda q: retrieval.cosine(lite0, q),
        "today_blend_hub": lambda q: retrieval.today(lite0, lite2, q, t),
        "centred_blend": lambda q: retrieval.cosine(centred, q),
    }
    choices: dict[str, Any] = {}
    dims = [{"dims": d} for d in (32, 64, 128, 256, 512)]

    def pcaw0(dims: int) -> Scorer:
        w = retrieval.pca_whiten(lite0, dims)
        return lambda q: retrieval.cosine(w, q)

    def pcaw(dims: int) -> Scorer:
        z = retrieval.joint(retrieval.pca_whiten(lite0, dims), retrieval.pca_whiten(lite2, dims))
        return lambda q: retrieval.cosine(z, q)

    for name, make in (("pcaw_lite0", pcaw0), ("pcaw_blend", pcaw)):
        setting, out[name], seen = choose(name, dims, make, calib)
        choices[name] = {"chosen": setting, "calibration_macro_recall@5": seen}
    d = choices["pcaw_blend"]["chosen"]["dims"]
    zw = retrieval.joint(retrieval.pca_whiten(lite0, d), retrieval.pca_whiten(lite2, d))
    qe_grid = [
        {"n": n, "alpha": a, "dba": b} for n in (1, 2, 3, 5) for a in (1.0, 3.0) for b in (False, True)
    ]
    kr_grid = [{"k": k, "lam": lam} for k in (5, 10, 20) for lam in (0.3, 0.5, 0.7)]
    for base_name, z in (("centred_blend", centred), ("pcaw_blend", zw)):
        for idea, grid, fn in (
            ("aqe", qe_grid, retrieval.alpha_qe),
            ("krecip", kr_grid, retrieval.k_reciprocal),
        ):

            def make_idea(z: np.ndarray = z, fn: Callable[..., np.ndarray] = fn, **kw: Any) -> Scorer:
                return lambda q: fn(z, q, **kw)

            name = f"{base_name}+{idea}"
            setting, out[name], seen = choose(name, grid, make_idea, calib)
            choices[name] = {"chosen": setting, "calibration_macro_recall@5": seen}
    return out, choices


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("test", "calibration", "all"), default="test")
    parser.add_argument("--json", type=Path, default=RESULTS / "same_room_eval_set.json", help="output file")
    parser.add_argument("--seed", type=int, default=0, help="room split seed")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of rooms")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the set, run every method on the chosen part, print the tables and write the JSON."""
    from tests.shared_data import shared_data_dir

    args = parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None or not (data_dir / "multiview").is_dir():
        print("../shared/data (houses/ and multiview/) is absent; set FLATSITE_SHARED_DATA", file=sys.stderr)
        return 2
    start = time.perf_counter()
    es, photos, emb, dropped = collection(data_dir)
    calib = queries_of(es, photos, "calibration", args.seed)
    chosen = queries_of(es, photos, args.part, args.seed)
    scorers, choices = methods(emb, calib)
    idx = [q.index for q in chosen]
    results = {
        name: recall_table(s(idx), chosen, n_boot=args.boot, aggregates=POOLS) for name, s in scorers.items()
    }
    report = {
        "machine": MACHINE,
        "args": {**vars(args), "json": str(args.json)},
        "collection": {
            "photos": len(photos),
            "distractors": len(photos) - len(es.photos),
            "dropped_copies": dropped,
        },
        "sizes": set_sizes(es, args.seed),
        "queries": len(chosen),
        "choices": choices,
        "results": results,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps({"collection": report["collection"], "sizes": report["sizes"]}, indent=1))
    print(format_table(results, "room"))
    print(format_table(results, "pair"))
    print(f"wall {report['wall_s']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
