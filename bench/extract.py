"""Extraction throughput: photos/s of the encoders on the houses photos, decode+resize vs model time.

python -m bench.extract [--limit 200] [--encoders effnet-lite0,effnet-lite2] [--workers 0,1] [--batch 32]
                        [--threads 2]

Per encoder and DataLoader worker count it embeds the first --limit houses photos (decode included) and
splits the time into decode+resize (summed over workers), time the main process waited for decoded batches,
and model time. It also times decoding with and without JPEG draft mode. CUDA rows are added when present.
The quality check behind the default preprocessing is ``python -m bench.extract_variants``.
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

from search.ml.features import ExtractTimings, load_encoder
from search.ml.image_loading import Preprocess, image_to_uint8, open_rgb
from tests.shared_data import shared_data_dir

RESULTS = Path(__file__).resolve().parent / "results" / "extract.json"
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
    """ms per photo to decode + resize to size x size, with and without JPEG draft (DCT-domain) scaling."""
    prep = Preprocess(image_size=size)
    start = time.perf_counter()
    for path in paths:
        image_to_uint8(open_rgb(path, size), prep)
    with_draft = time.perf_counter() - start
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            image_to_uint8(img.convert("RGB"), prep)
    full = time.perf_counter() - start
    return {
        "size": size,
        "photos": len(paths),
        "draft_ms": round(1000 * with_draft / len(paths), 2),
        "full_decode_ms": round(1000 * full / len(paths), 2),
    }


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
            f"decode+resize to {d['size']}px: {d['draft_ms']} ms/photo (draft), {d['full_decode_ms']} (full)"
        )
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": MACHINE,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": args.threads,
        "loadavg_before_after": [load_before, os.getloadavg()],
        "rows": [asdict(r) for r in rows],
        "decode": decode,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=lambda o: np.asarray(o).tolist()))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
