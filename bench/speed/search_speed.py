"""Import throughput and upload-to-results latency on the Houses photos.

python -m bench.speed [--limit 800] [--variants 2] [--queries 50]
Builds a fresh collection in a temporary data folder (SQLite), imports the photos with
`import_photos --inline` (normalise + features + index + matches), then posts edited copies of
collection photos to /api/search/ and times the whole request. --variants adds that many re-listings
of every house (another agent's lightly cropped, recoloured, re-encoded photos) so the collection
reaches a few thousand photos.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common.paths import RESULTS, ROOT


def _setup(data_dir: Path) -> None:
    os.environ["FLATSITE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flatsite.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ["CHANNEL_BACKEND"] = "memory"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _subset(houses: Path, limit: int, into: Path, variants: int) -> Path:
    into.mkdir(parents=True)
    for info in houses.glob("HousesInfo*.txt"):
        shutil.copy(info, into / info.name)
    for path in sorted(houses.glob("*.jpg"), key=lambda p: (int(p.name.split("_")[0]), p.name))[:limit]:
        os.symlink(path, into / path.name)
        house, room = path.stem.split("_", 1)
        for v in range(1, variants + 1):
            # House numbers above 10 000 are re-listings: the importer makes each a listing of its own.
            (into / f"{10_000 * v + int(house)}_{room}.jpg").write_bytes(_variant(path, v))
    return into


def _variant(path: Path, seed: int) -> bytes:
    """Another agent's copy: a light crop, a colour shift and another JPEG quality."""
    import random

    from PIL import Image, ImageEnhance

    rng = random.Random(f"{path.name}-{seed}")
    with Image.open(path) as img:
        w, h = img.size
        dx, dy = int(rng.uniform(0, 0.08) * w), int(rng.uniform(0, 0.08) * h)
        out = img.convert("RGB").crop((dx, dy, w - dx, h - dy))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.8, 1.2))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(70, 90))
    return buf.getvalue()


def _edit(path: Path) -> bytes:
    from PIL import Image, ImageDraw

    with Image.open(path) as img:
        w, h = img.size
        out = img.convert("RGB").crop((int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.9 * h)))
    ImageDraw.Draw(out).text((20, 20), "REALTY (c)", fill=(255, 255, 255))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=800)
    parser.add_argument("--variants", type=int, default=0)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.shared_data import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data is absent: nothing to benchmark")
    work = Path(tempfile.mkdtemp(prefix="flatsite-bench-"))
    _setup(work / "data")
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client

    from flatsite.core import accounts
    from search.models import Photo, PhotoMatch

    folder = _subset(shared / "houses", args.limit, work / "houses", args.variants)
    started = time.perf_counter()
    call_command("import_photos", str(folder), "--inline", stdout=io.StringIO())
    import_s = time.perf_counter() - started
    n_photos = Photo.objects.count()
    accounts.roles_setup()
    user = accounts.user_create(username="bench", password="bench-pass-123", role="realtor")
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    originals = sorted(p for p in folder.glob("*.jpg") if int(p.name.split("_")[0]) < 10_000)
    queries = originals[: args.queries]
    latencies, cpu, stages, found = [], [], [], 0
    for path in queries:
        data = _edit(path)
        t0, c0 = time.perf_counter(), time.process_time()
        photo = SimpleUploadedFile(f"edited-{path.name}", data, content_type="image/jpeg")
        response = client.post("/api/search/", {"photo": photo, "k": 10})
        latencies.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
        body = response.json()
        stages.append(body.get("timings", {}))
        found += any(m["original_name"] == path.name and m["level"] == "edited" for m in body["matches"])
    result = {
        "machine": os.environ.get("BENCH_MACHINE", "2-core x86_64 VM, 24 GiB, CPU only"),
        "photos": n_photos,
        "import_seconds": round(import_s, 1),
        "import_photos_per_s": round(n_photos / import_s, 2),
        "photo_matches": PhotoMatch.objects.count(),
        "queries": len(latencies),
        "search_p50_ms": round(statistics.median(latencies), 1),
        "search_p99_ms": round(_percentile(latencies, 0.99), 1),
        "search_cpu_p50_ms": round(statistics.median(cpu), 1),
        **{
            f"{stage}_p50": round(statistics.median(s.get(stage, 0.0) for s in stages), 1)
            for stage in ("global_ms", "verify_ms", "rerank_ms")
        },
        "load_average_1min": round(os.getloadavg()[0], 2),
        "edited_copy_found": f"{found}/{len(latencies)}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_speed.json").write_text(json.dumps(result, indent=2))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
