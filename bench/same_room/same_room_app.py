"""Same room, other angle, through the app itself: import, index, then image_search from each view.

python -m bench.same_room.same_room_app [--limit 800]

bench.same_room simulates the matcher on cached descriptors; this one measures what users get. A fresh
collection (temporary data folder, SQLite) gets the 800 Houses photos and the multiview photos (one
listing per room) with `import_photos --inline`; then every multiview photo is searched with
`image_search(query_from_photo(photo))`, as "search from this photo" does, and again uploaded (its
stored JPEG sent as a query file, so its SIFT runs on the query frame; itself left out of the results).
The app settings of bench/common/app.py run in the same process on the same collection (the indexes are
rebuilt between them): raw cosine (no centring, no re-ranking), centred index without re-ranking, and the
default (centred + re-ranked). Peer in the same run: plain cosine of the stored search-encoder embeddings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.app import SETTINGS, collection_import, indexes_rebuild, shared_or_exit
from bench.common.paths import RESULTS


def _multiview_folder(shared: Path, into: Path) -> dict[str, str]:
    """Symlink each multiview room into its own subfolder (one listing per room); {file name: room}."""
    from bench.same_room.same_room import multiview_photos

    rooms: dict[str, str] = {}
    for path, room in multiview_photos(shared):
        folder = into / room
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{room}_{path.name}"
        os.symlink(path, folder / name)
        rooms[name] = room
    return rooms


def _rank_recall(ranked: dict[int, list[int]], room_of: dict[int, str]) -> float:
    """recall@5 averaged over the queries of each room, then over rooms."""
    per_room: dict[str, list[bool]] = defaultdict(list)
    for query, ids in ranked.items():
        per_room[room_of[query]].append(any(room_of.get(i) == room_of[query] for i in ids[:5]))
    return float(np.mean([np.mean(v) for v in per_room.values()]))


def _uploaded(photo: Any) -> Any:
    """The photo's stored JPEG sent as an upload (its own features recomputed), itself left out."""
    from flatsite.core import storage
    from search.matching.engine import query_from_file, query_from_photo

    own = query_from_photo(photo)
    path = storage.media_path(photo.stored.image_path)
    query = query_from_file(path, path.name)  # the stored JPEG's own name: the decoder checks extensions
    return dataclasses.replace(query, exclude_ids=own.exclude_ids)


def _app_run(photos: list[Any], room_of: dict[int, str], *, uploaded: bool = False) -> dict[str, Any]:
    from search.matching.engine import image_search, query_from_photo

    ranked: dict[int, list[int]] = {}
    same_room = [0, 0]
    took: list[float] = []
    for photo in photos:
        result = image_search(_uploaded(photo) if uploaded else query_from_photo(photo), k=10)
        took.append(result.took_ms)
        ranked[photo.pk] = [row.photo.pk for row in result.matches]
        for row in result.matches:
            if row.level == "same_room":
                same_room[0] += room_of.get(row.photo.pk) == room_of[photo.pk]
                same_room[1] += 1
    scannet = {q: r for q, r in ranked.items() if room_of[q].startswith("scene")}
    return {
        "recall@5": round(_rank_recall(ranked, room_of), 3),
        "scannet_recall@5": round(_rank_recall(scannet, room_of), 3),
        "same_room_precision": f"{same_room[0]}/{same_room[1]}",
        "search_ms_p50": round(statistics.median(took), 1),
    }


def _peer(photos: list[Any], room_of: dict[int, str]) -> dict[str, Any]:
    from django.conf import settings

    from search.listings.selectors import features_matrix

    ids, vectors = features_matrix(settings.FLATSITE_SEARCH_ENCODER)
    row = {int(pid): i for i, pid in enumerate(ids.tolist())}
    ranked = {}
    for photo in photos:
        sims = vectors @ vectors[row[photo.pk]]  # (N,)
        sims[row[photo.pk]] = -np.inf
        ranked[photo.pk] = [int(ids[i]) for i in np.argsort(-sims)[:5]]
    scannet = {q: r for q, r in ranked.items() if room_of[q].startswith("scene")}
    return {
        "recall@5": round(_rank_recall(ranked, room_of), 3),
        "scannet_recall@5": round(_rank_recall(scannet, room_of), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=800, help="Houses photos in the collection")
    parser.add_argument(
        "--query-sides", default="640,480", help="uploaded queries' SIFT frames compared (px)"
    )
    args = parser.parse_args()
    shared = shared_or_exit()
    staging = Path(tempfile.mkdtemp(prefix="flatsite-bench-mv-"))
    names = _multiview_folder(shared, staging)
    _work, import_s = collection_import(shared, args.limit, staging)
    from django.test import override_settings

    from search.models import Photo

    photos = list(Photo.objects.filter(original_name__in=list(names), duplicate_of__isnull=True))
    room_of = {p.pk: names[p.original_name] for p in photos}
    report: dict[str, Any] = {
        "machine": os.environ.get("BENCH_MACHINE", "2-core x86_64 VM, 24 GiB, CPU only"),
        "photos": Photo.objects.count(),
        "queries": len(photos),
        "import_seconds": round(import_s, 1),
        "peer: plain search-encoder cosine": _peer(photos, room_of),
    }
    for label, overrides in SETTINGS.items():
        if "query SIFT" in label:
            continue  # a stored photo's query reuses its stored SIFT: only the uploaded rows below differ
        with override_settings(**overrides):
            indexes_rebuild()
            report[f"app: {label}"] = _app_run(photos, room_of)
    # The same photos uploaded: their SIFT runs on the query frame (FLATSITE_SEARCH_QUERY_SIFT_SIDE).
    for side in (int(v) for v in args.query_sides.split(",")):
        with override_settings(FLATSITE_SEARCH_QUERY_SIFT_SIDE=side):
            report[f"app default, uploaded query, query SIFT side {side}"] = _app_run(
                photos, room_of, uploaded=True
            )
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "same_room_app.json").write_text(json.dumps(report, indent=2))
    _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    print(
        f"{report['photos']} photos, {report['queries']} multiview queries, "
        f"import {report['import_seconds']} s"
    )
    print(f"{'':<52} {'recall@5':>9} {'ScanNet':>8} {'same-room prec.':>16} {'p50 ms':>7}")
    for label, row in report.items():
        if isinstance(row, dict) and "recall@5" in row:
            print(
                f"{label:<52} {row['recall@5']:>9} {row['scannet_recall@5']:>8} "
                f"{row.get('same_room_precision', '-'):>16} {row.get('search_ms_p50', '-'):>7}"
            )


if __name__ == "__main__":
    main()
