"""Edited copies through the app itself: every edit kind of BENCH_EDITS searched with image_search.

python -m bench.edited_copies.near_duplicates_app [--limit 800] [--sources 40] [--seed 0]

bench.edited_copies calibrates and measures the matcher on cached descriptors with a raw-cosine
shortlist; this one checks that the app, with its centred index and re-ranking, still finds them. A fresh
collection gets the first `limit` Houses photos with `import_photos --inline`; `sources` seeded collection
photos each get every edit kind (24, BENCH_EDITS), saved losslessly as PNG and searched with
`image_search(query_from_file(...))`. R@1: the source (or a photo the app itself recorded as its exact or
edited copy at import) is the first match; 'edited' recall: it is at the 'edited' level. Precision: the
share of exact/edited matches that are the source or such a copy. Raw and centred settings run in the
same process on the same collection.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common.app import SETTINGS, collection_import, indexes_rebuild, shared_or_exit
from bench.common.paths import RESULTS
from search.ml.images.edits import BENCH_EDITS, apply_edit


def _copies() -> dict[int, set[int]]:
    """{photo id: itself and the photos the app recorded as its exact or edited copies}."""
    from search.models import Photo, PhotoMatch

    groups: dict[int, set[int]] = defaultdict(set)
    for pk in Photo.objects.values_list("pk", flat=True):
        groups[pk].add(pk)
    for a, b in PhotoMatch.objects.filter(level__in=["exact", "edited"]).values_list("photo_a", "photo_b"):
        groups[a].add(b)
        groups[b].add(a)
    for copy, original in Photo.objects.filter(duplicate_of__isnull=False).values_list("pk", "duplicate_of"):
        groups[original].add(copy)
        groups[copy].add(original)
    return groups


def _run(queries: list[tuple[int, str, Path]], groups: dict[int, set[int]]) -> dict[str, Any]:
    from search.matching.engine import image_search, query_from_file

    per_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    strong = [0, 0]
    for source, kind, path in queries:
        result = image_search(query_from_file(path, path.name), k=10)
        ok = groups[source]
        first = bool(result.matches) and result.matches[0].photo.pk in ok
        edited = any(m.photo.pk in ok and m.level in ("exact", "edited") for m in result.matches)
        per_kind[kind].append((first, edited))
        for m in result.matches:
            if m.level in ("exact", "edited"):
                strong[0] += m.photo.pk in ok
                strong[1] += 1
    kinds = {k: {"n": len(v), "R@1": _mean(v, 0), "edited": _mean(v, 1)} for k, v in per_kind.items()}
    rows = [x for v in per_kind.values() for x in v]
    return {
        "R@1": _mean(rows, 0),
        "edited_recall": _mean(rows, 1),
        "edited_precision": f"{strong[0]}/{strong[1]}",
        "worst_kind_R@1": min(kinds.items(), key=lambda kv: kv[1]["R@1"]),
        "per_kind": kinds,
    }


def _mean(rows: list[tuple[bool, bool]], col: int) -> float:
    return round(sum(r[col] for r in rows) / max(1, len(rows)), 4)


def _queries(sources: list[Any], seed: int, into: Path) -> list[tuple[int, str, Path]]:
    from PIL import Image

    from flatsite.core import storage

    out = []
    for photo in sources:
        with Image.open(storage.media_path(photo.image_path)) as img:
            original = img.convert("RGB")
        for kind in BENCH_EDITS:
            rng = random.Random(f"{seed}-{photo.pk}-{kind}")
            path = into / f"{photo.pk}-{kind.replace('+', '_')}.png"
            apply_edit(original, kind, rng, BENCH_EDITS).save(path, "PNG")
            out.append((photo.pk, kind, path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=800, help="Houses photos in the collection")
    parser.add_argument("--sources", type=int, default=40, help="collection photos edited 24 ways each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--query-sides", default="", help="more query SIFT frames to compare (px, e.g. 400,360)"
    )
    args = parser.parse_args()
    shared = shared_or_exit()
    work, import_s = collection_import(shared, args.limit)
    from django.test import override_settings

    from search.models import Photo

    stored = list(Photo.objects.filter(duplicate_of__isnull=True, status=Photo.Status.INDEXED).order_by("pk"))
    sources = random.Random(args.seed).sample(stored, min(args.sources, len(stored)))
    edits_dir = Path(tempfile.mkdtemp(prefix="edits-", dir=work))
    queries = _queries(sources, args.seed, edits_dir)
    groups = _copies()
    report: dict[str, Any] = {
        "machine": os.environ.get("BENCH_MACHINE", "2-core x86_64 VM, 24 GiB, CPU only"),
        "photos": Photo.objects.count(),
        "queries": len(queries),
        "import_seconds": round(import_s, 1),
    }
    rows = {
        label: SETTINGS[label]
        for label in (
            "raw cosine (no centring, no re-ranking)",
            "centred + re-ranked, query SIFT on the stored 640 frame",
            "centred + re-ranked (default)",
        )
    }
    for side in (int(v) for v in args.query_sides.split(",") if v):
        rows[f"centred + re-ranked, query SIFT on {side} px"] = {"FLATSITE_SEARCH_QUERY_SIFT_SIDE": side}
    for label, overrides in rows.items():
        with override_settings(**overrides):
            indexes_rebuild()
            report[f"app: {label}"] = _run(queries, groups)
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "near_duplicates_app.json").write_text(json.dumps(report, indent=2))
    print(f"{report['photos']} photos, {report['queries']} edited-copy queries, import {import_s:.0f} s")
    print(f"{'':<44} {'R@1':>7} {'edited recall':>14} {'precision':>12}  worst kind (R@1)")
    for label, row in report.items():
        if isinstance(row, dict) and "R@1" in row:
            worst = f"{row['worst_kind_R@1'][0]} ({row['worst_kind_R@1'][1]['R@1']})"
            print(
                f"{label:<44} {row['R@1']:>7} {row['edited_recall']:>14} "
                f"{row['edited_precision']:>12}  {worst}"
            )


if __name__ == "__main__":
    main()
