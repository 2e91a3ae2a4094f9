"""Extraction throughput: photos/s of the encoders on the houses photos, decode+resize vs model time.

python -m bench.extract [--limit 200] [--encoders effnet-lite0,effnet-lite2] [--workers 0,1] [--batch 32]
                        [--threads 2]

Per encoder and DataLoader worker count it embeds the first --limit houses photos (decode included) and
splits the time into decode+resize (summed over workers), time the main process waited for decoded batches,
and model time (wall clock). It also measures CPU time per photo, which other jobs on a shared machine
distort far less: decoding with and without JPEG draft mode, and the model alone on one thread. CUDA rows
are added when present.
The quality check behind the default preprocessing is ``python -m bench.extract.extract_variants``.
Photos: Houses Dataset (Ahmed and Moustafa, IJCCI 2016), read from ../shared/data at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.common.paths import RESULTS as RESULTS_DIR
from search.ml.encoders.registry import ExtractTimings, load_encoder
from search.ml.images.loading import Preprocess, image_to_uint8, open_rgb
from tests.shared_data import shared_data_dir

RESULTS = RESULTS_DIR / "extract.json"
MACHINE = "2-core x86_64 VM, 24 GiB, CPU only, shared with other jobs"


@dataclass
class Row:
    encoder: str
    device: str
    workers: int
    batch: int
    photos: int
    total_s: float
    photos_per_s: float
    decode_ms_per_photo: float  # decode + resize, CPU time on the loader side
    wait_ms_per_photo: float  # main process blocked on the loader
    model_ms_per_photo: float


def houses_photos(limit: int) -> list[Path]:
    """The first `limit` houses photos in (house, room) order."""
    root = shared_data_dir()
    if root is None:
        raise SystemExit("../shared/data is absent; set FLATSITE_SHARED_DATA")
    paths = sorted((root / "houses").glob("*.jpg"), key=lambda p: (int(p.stem.split("_")[0]), p.stem))
    return paths[:limit]


def measure(encoder_name: str, device: str, paths: list[Path], workers: int, batch: int) -> Row:
    """Embed paths once (after a one-batch warm-up) and report the time split."""
    encoder = load_encoder(encoder_name, device)
    encoder.embed_paths(paths[:batch], batch_size=batch)  # warm-up: allocator, oneDNN primitives, cuDNN
    timings = ExtractTimings()
    encoder.embed_paths(paths, batch_size=batch, num_workers=workers, timings=timings)
    per_photo = 1000.0 / len(paths)
    return Row(
        encoder=encoder_name,
        device=device,
        workers=workers,
        batch=batch,
        photos=len(paths),
        total_s=round(timings.total_s, 2),
        photos_per_s=round(len(paths) / timings.total_s, 1),
        decode_ms_per_photo=round(timings.decode_s * per_photo, 1),
        wait_ms_per_photo=round(timings.wait_s * per_photo, 1),
        model_ms_per_photo=round(timings.model_s * per_photo, 1),
    )


def decode_cost(paths: list[Path], size: int) -> dict[str, float]:
    """CPU ms per photo to decode + resize to size x size, with and without JPEG draft (DCT scaling)."""
    prep = Preprocess(image_size=size)
    start = time.process_time()
    for path in paths:
        image_to_uint8(open_rgb(path, size), prep)
    with_draft = time.process_time() - start
    start = time.process_time()
    for path in paths:
        with Image.open(path) as img:
            image_to_uint8(img.convert("RGB"), prep)
    full = time.process_time() - start
    return {
        "size": size,
        "photos": len(paths),
        "draft_cpu_ms": round(1000 * with_draft / len(paths), 2),
        "full_decode_cpu_ms": round(1000 * full / len(paths), 2),
    }


def model_cpu_cost(encoder_name: str, paths: list[Path], batch: int) -> float:
    """CPU ms per photo of the model alone on one thread: robust to other jobs sharing the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    encoder = load_encoder(encoder_name, "cpu")
    batches = [
        encoder.prep_batch([open_rgb(p, encoder.info.image_size) for p in paths[lo : lo + batch]])
        for lo in range(0, len(paths), batch)
    ]
    with torch.inference_mode():
        encoder.forward_features(batches[0])  # warm-up for this thread count
        start = time.process_time()
        for x in batches:
            encoder.forward_features(x)
        spent = time.process_time() - start
    torch.set_num_threads(threads)
    return round(1000 * spent / len(paths), 1)


def print_table(rows: list[Row]) -> None:
    print(f"{'encoder':14} {'device':6} {'wrk':>3} {'photos/s':>9} ", end="")
    print(f"{'decode ms':>10} {'wait ms':>8} {'model ms':>9}")
    for r in rows:
        print(
            f"{r.encoder:14} {r.device:6} {r.workers:>3} {r.photos_per_s:>9.1f} "
            f"{r.decode_ms_per_photo:>10.1f} {r.wait_ms_per_photo:>8.1f} {r.model_ms_per_photo:>9.1f}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=200, help="number of houses photos (800 = all)")
    parser.add_argument("--encoders", default="effnet-lite0,effnet-lite2")
    parser.add_argument("--workers", default="0,1", help="DataLoader worker counts")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    paths = houses_photos(args.limit)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    load_before = os.getloadavg()
    rows = [
        measure(name, device, paths, int(workers), args.batch)
        for device in devices
        for name in args.encoders.split(",")
        for workers in args.workers.split(",")
    ]
    print_table(rows)
    decode = [decode_cost(paths[:100], size) for size in (224, 260)]
    for d in decode:
        print(
            f"decode+resize to {d['size']}px, CPU ms/photo:",
            f"{d['draft_cpu_ms']} with draft, {d['full_decode_cpu_ms']} without",
        )
    model_cpu = {name: model_cpu_cost(name, paths[:64], args.batch) for name in args.encoders.split(",")}
    print("model alone, CPU ms/photo on 1 thread:", model_cpu)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": MACHINE,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": args.threads,
        "loadavg_before_after": [load_before, os.getloadavg()],
        "rows": [asdict(r) for r in rows],
        "decode": decode,
        "model_cpu_ms_per_photo_1_thread": model_cpu,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=lambda o: np.asarray(o).tolist()))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
