"""Malformed-image fuzz run (nightly size) through the isolated decoder, plus its per-photo overhead.

python -m bench.fuzz [--n 10000] [--seed 0] [--real 16] [--overhead 200]

The corpus is tests/malformed.py (the CI test runs its first 2 000 files): mutations of generated and
real photos (truncations, bit flips, byte-range shuffles, wrong and huge header dimensions, polyglots)
and crafted files (lying magic bytes, name/content mismatches, pixel and frame bombs). Every file goes
through search.ml.images.safe_decode.normalise_isolated with the default limits (1024 MB, 20 s), as a worker
does. Counts per mutation kind: processed / rejected by reason class / decoder crashed / timed out /
out of memory / escaped (any other exception: a bug). Writes bench/results/fuzz_images.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.common.paths import RESULTS
from search.ml.images.normalise import ImageLimits, ImageRejected, normalise
from search.ml.images.safe_decode import ChildLimits, DecodeAborted, DecoderProcess, normalise_isolated
from tests import images, malformed
from tests.shared_data import shared_data_dir

REASONS = [
    ("not an image", "not an image"),
    ("unsupported file type", "bad extension"),
    ("does not match its content", "extension mismatch"),
    ("too many pixels", "pixel limit"),
    ("image too large", "pixel limit"),
    ("too small", "too small"),
    ("too many frames", "frame limit"),
    ("corrupt or truncated", "corrupt data"),
    ("unreadable image header", "corrupt header"),
    ("decoder error", "decoder error"),
    ("empty file", "empty"),
]


def reason_class(message: str) -> str:
    """A short class for a rejection message."""
    return next((label for prefix, label in REASONS if prefix in message), "other")


def run_corpus(bases: list[malformed.Base], n: int, seed: int, work: Path) -> dict[str, object]:
    """Push n corpus files through the isolated decoder; counts per kind and timings."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    seconds: collections.Counter[str] = collections.Counter()
    slowest = (0.0, -1, "")
    total_bytes, started = 0, time.perf_counter()
    for sample in malformed.corpus(n, bases, seed):
        path = work / sample.name
        path.write_bytes(sample.data)
        total_bytes += len(sample.data)
        t0 = time.perf_counter()
        try:
            normalise_isolated(path, sample.name, ImageLimits(), ChildLimits(), with_image=False)
            outcome = "processed"
        except DecodeAborted as exc:
            outcome = {"crashed": "crashed", "timeout": "timed out", "memory": "out of memory"}.get(
                exc.kind, f"aborted:{exc.kind}"
            )
        except ImageRejected as exc:
            outcome = f"rejected: {reason_class(str(exc))}"
        except Exception as exc:  # counted, not raised: the number of these is what the run measures
            outcome = f"escaped: {type(exc).__name__}"
        elapsed = time.perf_counter() - t0
        path.unlink()
        counts[sample.kind][outcome] += 1
        seconds[sample.kind] += elapsed
        slowest = max(slowest, (elapsed, sample.index, sample.kind))
    wall = time.perf_counter() - started
    return {
        "files": n,
        "wall_s": round(wall, 1),
        "files_per_s": round(n / wall, 1),
        "mb_per_s": round(total_bytes / wall / 1e6, 2),
        "slowest": {"seconds": round(slowest[0], 2), "index": slowest[1], "kind": slowest[2]},
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
        "ms_per_file_by_kind": {k: round(1000 * seconds[k] / sum(counts[k].values()), 1) for k in counts},
        "totals": dict(sum(counts.values(), collections.Counter())),
    }


def overhead(bases: list[malformed.Base], count: int, work: Path) -> dict[str, object]:
    """Mean ms per valid photo: in-process normalise vs the isolated decoder (warm), per photo size."""
    groups = {
        "generated 320x240 JPEG": [images.jpeg(i) for i in range(count)],
        "real photos": [b.data for b in bases if b.label.startswith("real:")] * max(1, count // 16),
    }
    out: dict[str, object] = {}
    for label, datas in groups.items():
        if not datas:
            continue
        paths = []
        for i, data in enumerate(datas):
            paths.append(work / f"o{i}.jpg")
            paths[-1].write_bytes(data)
        normalise_isolated(paths[0], "o.jpg")  # start the decoder outside the timing
        timings = {}
        for mode in ("in-process", "isolated"):
            t0 = time.perf_counter()
            for path in paths:
                if mode == "in-process":
                    normalise(path, path.name)
                else:
                    normalise_isolated(path, path.name, with_image=False)
            timings[mode] = 1000 * (time.perf_counter() - t0) / len(paths)
        out[label] = {
            "photos": len(paths),
            "in_process_ms": round(timings["in-process"], 2),
            "isolated_ms": round(timings["isolated"], 2),
            "overhead_ms": round(timings["isolated"] - timings["in-process"], 2),
        }
        for path in paths:
            path.unlink()
    first = work / "first.jpg"
    first.write_bytes(images.jpeg(1))
    t0 = time.perf_counter()
    cold = DecoderProcess(ChildLimits())  # a fresh decoder: interpreter, Pillow, NumPy, OpenCV
    cold.normalise(first, first.name, ImageLimits(), with_image=False)
    out["cold_start_ms"] = round(1000 * (time.perf_counter() - t0), 1)
    cold.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=int, default=16, help="real photos from ../shared/data/houses")
    parser.add_argument("--overhead", type=int, default=200, help="photos for the overhead measurement")
    args = parser.parse_args()
    shared = shared_data_dir()
    bases = malformed.generated_bases() + malformed.real_bases(
        shared / "houses" if shared else None, args.real
    )
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        result = run_corpus(bases, args.n, args.seed, work)
        result["overhead"] = overhead(bases, args.overhead, work)
    result["bases"] = [b.label for b in bases]
    result["machine"] = f"{platform.machine()} {platform.system()}, Python {sys.version.split()[0]}"
    _print(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fuzz_images.json").write_text(json.dumps(result, indent=2))


def _print(result: dict[str, object]) -> None:
    by_kind = result["by_kind"]
    assert isinstance(by_kind, dict)
    outcomes = sorted({o for counts in by_kind.values() for o in counts})
    print(f"{'kind':18}" + "".join(f"{o[:22]:>24}" for o in outcomes))
    for kind, counts in by_kind.items():
        print(f"{kind:18}" + "".join(f"{counts.get(o, 0):>24}" for o in outcomes))
    print(json.dumps({k: v for k, v in result.items() if k not in ("by_kind", "bases")}, indent=2))


if __name__ == "__main__":
    main()
