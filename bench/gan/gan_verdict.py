"""The verdict table: GAN-encoder embeddings vs EfficientNet-Lite0 vs their concatenation.

python -m bench.gan [--checkpoint PATH | --train-minutes 20] [--seed 0] [--originals 300]

Without --checkpoint a GAN run (preset cpu-smoke, 4 -> 32 px) is first trained on ../shared/data/houses for
--train-minutes of process CPU time (capped at 1.5x that in wall time); its checkpoint stays under
bench/results/. The encoder is built from the checkpoint as the app builds it for indexing
(training.ml.encoder_adapter). Measures, on embeddings only (cosine; no hashes, SIFT or calibrated levels):
  - near-duplicate recall@1 (and @30) of edited copies: bench.edited_copies' test split and edits;
  - same-room recall@5 per room: multiview photos mixed into the 800 listing photos (bench.same_room);
  - room-type ARI of bench.clustering's default pipeline (PCA 50 -> UMAP 5-D -> HDBSCAN), 3 seeds.
Concatenation: each part L2-normalised, concatenated, re-normalised. A control row uses the same run's
encoder at step 0 (its seeded initial weights). Every photo is decoded/edited once and embedded once per
encoder; Lite0 embeddings are cached in bench/results/cache/gan_verdict/. Writes
bench/results/gan_verdict.json. Photos: Houses Dataset (Ahmed and Moustafa, IJCCI 2016), ScanNet pairs,
TUM fr3 (see ../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.clustering.data import load_houses
from bench.common.match_levels import MACHINE, RESULTS, PhotoRecord, duplicate_groups
from bench.edited_copies.near_duplicates import _loader, house_paths, make_splits
from bench.edited_copies.near_duplicates import parse_args as nd_parse_args
from bench.gan import verdict_train
from bench.gan.verdict_data import EncoderSpec, PhotoSet, concat, embed_set, encoder_fingerprint
from bench.gan.verdict_measures import near_dup_recall, room_type_ari, same_room_recall
from bench.same_room.same_room import multiview_photos
from search.ml.images.hashing import dhash, phash, pixel_sha256
from search.ml.match.local import LocalFeatures
from training.ml import CheckpointError, list_images

LITE0, GAN, CONCAT, STEP0 = "effnet-lite0", "gan", "concat(lite0+gan)", "gan-step0 (control)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="a training run checkpoint (skips training)")
    parser.add_argument(
        "--train-minutes", type=float, default=20.0, help="CPU minutes of training (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed and near-duplicate split seed")
    parser.add_argument("--originals", type=int, default=300, help="near-duplicate test sources (max 400)")
    parser.add_argument("--cluster-seeds", default="0,1,2", help="clustering seeds (ARI is their mean)")
    parser.add_argument("--no-control", action="store_true", help="skip the step-0 encoder control row")
    parser.add_argument("--out", type=Path, default=RESULTS / "gan_verdict.json", help="JSON report path")
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.train_minutes <= 0:
        parser.error("--train-minutes must be positive")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint} is not a file")
    return args


def _encoders(checkpoint: Path, control: bool) -> list[EncoderSpec]:
    from search.ml.encoders.registry import load_encoder

    lite0 = load_encoder(LITE0, device="cpu")

    def lite0_embed(images: list[Any]) -> np.ndarray:
        return lite0.embed_images(images, batch_size=16)

    gan = verdict_train.gan_encoder(checkpoint)
    specs = [
        EncoderSpec(LITE0, lite0_embed, cache_tag=encoder_fingerprint(lite0_embed)),
        EncoderSpec(GAN, lambda images: gan.embed_images(images, batch_size=64)),
    ]
    if control:
        step0 = verdict_train.untrained_encoder(checkpoint)
        specs.append(EncoderSpec(STEP0, lambda images: step0.embed_images(images, batch_size=64)))
    return specs


def _hashes(img: Any) -> tuple[str, int, int]:
    return pixel_sha256(img), phash(img), dhash(img)


def _groups(houses: PhotoSet) -> list[int]:
    """bench.edited_copies' same-photo groups (equal pixels or near-identical pHash and dHash)."""
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (0, 0))
    records = [
        PhotoRecord(key, np.zeros(1, np.float32), sha, ph, dh, empty, {})
        for key, (sha, ph, dh) in zip(houses.keys, houses.inspected, strict=True)
    ]
    return duplicate_groups(records)


def _with_concat(s: PhotoSet) -> dict[str, np.ndarray]:
    # Table order: the two encoders, their concatenation, then the control (when it was run).
    out = {LITE0: s.vectors[LITE0], GAN: s.vectors[GAN], CONCAT: concat([s.vectors[LITE0], s.vectors[GAN]])}
    return {**out, **{k: v for k, v in s.vectors.items() if k not in out}}


def measure(data_dir: Path, specs: list[EncoderSpec], args: argparse.Namespace) -> dict[str, Any]:
    """Embed every photo set once per encoder, then run the three measures for every encoder."""
    cost: dict[str, list[float]] = {}
    paths = house_paths(data_dir)
    print(f"houses: {len(paths)} photos", flush=True)
    houses = embed_set(
        "houses", [(f"houses/{p.name}", _loader(p, None, "")) for p in paths], specs, cost, _hashes
    )
    nd_args = nd_parse_args(["--seed", str(args.seed), "--originals", str(args.originals)])
    test = next(s for s in make_splits(paths, _groups(houses), nd_args) if s.name == "test")
    qs = [q for q in test.queries if q.positives]  # copies of absent sources without a duplicate: no recall
    print(f"near-duplicate test copies: {len(qs)} with an original in the collection", flush=True)
    copies = embed_set(
        f"nd_test_s{args.seed}_o{args.originals}",
        [(q.key, _loader(paths[q.source], q.kind, q.key)) for q in qs],
        specs,
        cost,
    )
    views = multiview_photos(data_dir)
    mv_items = [(f"multiview/{room}/{p.name}", _loader(p, None, "")) for p, room in views]
    multiview = embed_set("multiview", mv_items, specs, cost)
    data = load_houses()
    assert data is not None
    row_of = {p.name: i for i, p in enumerate(paths)}
    order = np.array([row_of[p.name] for p in data.paths])
    seeds = [int(s) for s in args.cluster_seeds.split(",")]
    h, c, m = _with_concat(houses), _with_concat(copies), _with_concat(multiview)
    results: dict[str, Any] = {}
    for name in h:
        print(f"measuring {name}", flush=True)
        results[name] = {
            "dim": int(h[name].shape[1]),
            "near_duplicates": near_dup_recall(h[name], c[name], qs, test.absent),
            "same_room": same_room_recall(np.vstack([h[name], m[name]]), len(paths), [r for _, r in views]),
            "clustering": room_type_ari(h[name][order], data, seeds),
        }
    n_photos = len(houses.keys) + len(copies.keys) + len(multiview.keys)
    per_photo = {k: {"cpu_ms_per_photo": 1000.0 * s / n, "photos": int(n)} for k, (s, n) in cost.items()}
    return {"encoders": results, "embed_cost": per_photo, "photos_embedded": n_photos}


def print_report(report: dict[str, Any]) -> None:
    """The verdict table, then recall@1 per edit kind."""
    enc = report["encoders"]
    head = "| encoder | dim | near-dup R@1 | near-dup R@30 | same-room R@5 (ScanNet) | ARI mean / min | NMI |"
    print(f"\n{head} kNN-5 purity |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in enc.items():
        nd, sr, cl = r["near_duplicates"], r["same_room"], r["clustering"]
        print(
            f"| {name} | {r['dim']} | {nd['recall@1']:.3f} | {nd['recall@30']:.3f} | "
            f"{sr['recall@5']:.3f} ({sr['recall@5_scannet']:.3f}) | {cl['ari']:.3f} / {cl['ari_min']:.3f} | "
            f"{cl['nmi']:.3f} | {cl['knn5_purity']:.3f} |"
        )
    first = next(iter(enc.values()))
    nd, sr, cl = first["near_duplicates"], first["same_room"], first["clustering"]
    print(
        f"| chance | | {nd['chance_recall@1']:.4f} | | {sr['chance_recall@5']:.3f} "
        f"({sr['chance_recall@5_scannet']:.3f}) | 0 | 0 | {cl['chance_knn5_purity']:.3f} |"
    )
    print("\n| edit kind | n | " + " | ".join(enc) + " |")
    print("|---|---:|" + "---:|" * len(enc))
    for kind, v in nd["per_kind"].items():
        cells = " | ".join(f"{r['near_duplicates']['per_kind'][kind]['recall@1']:.3f}" for r in enc.values())
        print(f"| {kind} | {v['n']} | {cells} |")
    cost = {k: f"{v['cpu_ms_per_photo']:.1f} ms x {v['photos']}" for k, v in report["embed_cost"].items()}
    print("\nCPU per photo (cached embeddings not counted):", cost)


def main(argv: list[str] | None = None) -> int:
    """Train (or load) the GAN encoder, measure every encoder, print and write the JSON."""
    from tests.shared_data import shared_data_dir

    args = parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None:
        print("../shared/data is absent; set FLATSITE_SHARED_DATA", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # shared 2-core machine: more threads only add OpenMP barrier stalls
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": f"{MACHINE}; {platform.machine()}, torch {torch.__version__}, 1 thread",
        "date": time.strftime("%Y-%m-%d"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    checkpoint = args.checkpoint
    if checkpoint is None:
        print(
            f"training {verdict_train.PRESET} for {args.train_minutes:g} CPU minutes (seed {args.seed})",
            flush=True,
        )
        checkpoint, report["training"] = verdict_train.train_budget(
            list_images(data_dir / "houses"), args.train_minutes, args.seed, RESULTS
        )
    try:
        report["gan_checkpoint"] = verdict_train.describe_checkpoint(checkpoint)
        specs = _encoders(checkpoint, control=not args.no_control)
    except (CheckpointError, KeyError, ValueError, IndexError, EOFError) as exc:
        # load_checkpoint lets some errors of torch's weights-only unpickler on a corrupt file through
        print(f"cannot use the checkpoint {checkpoint}: {exc!r}", file=sys.stderr)
        return 2
    ck = report["gan_checkpoint"]
    print(f"GAN encoder: {checkpoint} (step {ck['steps']}, {ck['resolution']} px, alpha {ck['alpha']:.2f})")
    report.update(measure(data_dir, specs, args))
    report["total_wall_s"] = time.perf_counter() - started
    print_report(report)
    print(f"total wall time: {report['total_wall_s']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
