"""Same room, other angle: multiview photos mixed into the 800 house photos.

python -m bench.same_room [--k 30] [--seed 0]

Queries are the 30 ScanNet views (15 rooms x 2, 32-172 degrees apart) and the 17 TUM fr3 office frames;
the collection is those 47 photos plus the 800 listing photos. Reported: recall@5 (another photo of the
query's room among the first five ranked matches) averaged per room, the same for the ScanNet rooms alone,
plain global-cosine recall@5 as the peer, and the precision of the 'same room' level. The same-room and
similar-look thresholds are calibrated on listing photos of the near-duplicate benchmark's calibration
houses (no multiview photo is used for calibration); the listing photos of its test houses are also run as
queries to count false 'same room' matches between different listings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.match_levels import (
    CACHE,
    MACHINE,
    RESULTS,
    CandidateRow,
    Collection,
    PhotoRecord,
    Progress,
    compute_records,
    duplicate_groups,
    load_rows,
)
from bench.edited_copies.near_duplicates import CFG, _loader, config_tag, house_paths, verify_tag
from bench.same_room import calibrate, rerank
from search.ml.match.levels import Level, LevelThresholds, Match, classify, rank_matches
from search.ml.match.rerank import rerank_similar


def multiview_photos(data_dir: Path) -> list[tuple[Path, str]]:
    """(path, room) for the ScanNet pairs and the TUM sequence."""
    root = data_dir / "multiview"
    scannet = [(p, p.parent.name) for p in sorted((root / "scannet_pairs").glob("*/*.jpg"))]
    tum = [(p, "tum_" + p.parent.name) for p in sorted((root / "tum_fr3_sequence").glob("*/*.png"))]
    return scannet + tum


def rows_for(
    collection: Collection, queries: list[tuple[int, PhotoRecord]], k: int, name: str
) -> list[CandidateRow]:
    """Verified shortlist rows for (collection index, record) queries, cached as JSON lines."""
    path = CACHE / f"sr_rows_{verify_tag()}_{name}_k{k}.jsonl"
    rows = load_rows(path)
    done = {r.query for r in rows}
    progress = Progress(f"{name} verification")
    todo = [(i, rec) for i, rec in queries if rec.key not in done]
    with path.open("a") as fh:
        for n, (i, rec) in enumerate(todo, 1):
            for row in collection.candidates(rec, k, CFG, exclude=[i]):
                fh.write(json.dumps(row.__dict__) + "\n")
                rows.append(row)
            fh.flush()
            progress(n, len(todo))
    return rows


def ranked(rows: list[CandidateRow], t: LevelThresholds) -> dict[str, list[Match]]:
    """Classified, ranked matches per query."""
    by_query: dict[str, list[Match]] = defaultdict(list)
    for row in rows:
        cand = row.candidate()
        if row.rank >= t.verify_top_k:
            cand.verification = None
        found = classify(cand, t)
        if found is not None:
            by_query[row.query].append(found)
    return {q: rank_matches(m) for q, m in by_query.items()}


def evaluate(
    rows: list[CandidateRow],
    rooms: dict[int, str],
    keys: dict[str, int],
    t: LevelThresholds,
    rescored: dict[str, dict[int, float]] | None = None,
) -> dict[str, Any]:
    """Recall@5 per room (matcher, optionally re-ranked, and plain cosine) and same-room level precision."""
    results = ranked(rows, t)
    if rescored is not None:
        results = {q: rerank_similar(m, rescored.get(q, {})) for q, m in results.items()}
    unfloored = ranked(rows, replace(t, similar_min_score=-1.0))
    cosine: dict[str, list[int]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.rank):
        cosine[row.query].append(row.cand)
    per_room: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    level_hits = {"same_room": [0, 0], "same_room_or_stronger": [0, 0]}
    wrong: list[dict[str, Any]] = []
    for key, qi in keys.items():
        room = rooms[qi]
        matches = results.get(key, [])
        hit = any(rooms.get(m.id) == room for m in matches[:5])
        plain = any(rooms.get(c) == room for c in cosine[key][:5])
        ranking = any(rooms.get(m.id) == room for m in unfloored.get(key, [])[:5])
        per_room[room].append((hit, plain, ranking))
        for m in matches:
            correct = rooms.get(m.id) == room
            if m.level == Level.SAME_ROOM:
                level_hits["same_room"][0] += correct
                level_hits["same_room"][1] += 1
            if m.level != Level.SIMILAR:
                level_hits["same_room_or_stronger"][0] += correct
                level_hits["same_room_or_stronger"][1] += 1
                if not correct:
                    wrong.append({"query": key, "cand": m.id, "level": str(m.level), **m.evidence})
    return _summary(per_room, level_hits, wrong)


def _summary(per_room, level_hits, wrong) -> dict[str, Any]:
    def mean_rooms(names: list[str], col: int) -> float:
        return float(np.mean([np.mean([x[col] for x in per_room[r]]) for r in names]))

    rooms = sorted(per_room)
    scannet = [r for r in rooms if r.startswith("scene")]
    return {
        "per_room": {
            r: {"n": len(v), "recall@5": float(np.mean([x[0] for x in v]))} for r, v in per_room.items()
        },
        "recall@5": mean_rooms(rooms, 0),
        "recall@5_scannet": mean_rooms(scannet, 0),
        "cosine_recall@5": mean_rooms(rooms, 1),
        "cosine_recall@5_scannet": mean_rooms(scannet, 1),
        "ranking_recall@5": mean_rooms(rooms, 2),
        "ranking_recall@5_scannet": mean_rooms(scannet, 2),
        "level_precision": {
            k: {"correct": c, "total": n, "precision": c / n if n else float("nan")}
            for k, (c, n) in level_hits.items()
        },
        "wrong_matches": wrong[:50],
    }


def house_false_matches(
    rows: list[CandidateRow], linked: dict[int, set[int]], t: LevelThresholds
) -> dict[str, int]:
    """Listing-photo queries: same-room (or stronger) matches to photos of unrelated listings."""
    counts = {"queries": 0, "same_room_false": 0, "edited_false": 0}
    results = ranked(rows, t)
    owner = {row.query: row for row in rows}
    counts["queries"] = len(owner)
    for key, matches in results.items():
        qi = int(key.split("#")[1])
        for m in matches:
            if m.id in linked[qi]:
                continue
            counts["same_room_false"] += m.level == Level.SAME_ROOM
            counts["edited_false"] += m.level in (Level.EDITED, Level.EXACT)
    return counts


def rerank_report(
    collection: Collection,
    items: list[tuple[str, Any]],
    n_listing: int,
    rows: list[CandidateRow],
    rooms: dict[int, str],
    keys: dict[str, int],
    t: LevelThresholds,
) -> dict[str, Any]:
    """The matcher with the similar level re-ranked (search.ml.match.rerank), its sensitivity and CPU cost."""
    lite2, lite2_cpu_s = rerank.lite2_embeddings(f"{len(items)}", items)
    reranker = rerank.Reranker(collection, lite2, n_listing, t)
    reranker.set_queries(rows, keys)
    report = evaluate(rows, rooms, keys, t, reranker.per_query())
    cost = [reranker.cpu_ms(keys[k], c[: t.verify_top_k]) for k, c in reranker.shortlists.items()]
    report["cpu_ms_rescore_30"] = float(np.median(cost))
    report["cpu_ms_lite2_query_embedding"] = lite2_cpu_s * 1000
    report["sensitivity"] = rerank.sensitivity(
        collection,
        lite2,
        n_listing,
        t,
        rows,
        keys,
        lambda r, tt: evaluate(rows, rooms, keys, tt, r)["recall@5"],
    )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, default=30, help="global shortlist verified per query")
    parser.add_argument("--seed", type=int, default=0, help="house split seed (as bench.edited_copies)")
    parser.add_argument(
        "--house-queries", type=int, default=400, help="test-house listing photos run as queries"
    )
    parser.add_argument(
        "--centre",
        action="store_true",
        help="global search on embeddings centred on the listing photos' mean (also runs the re-ranking)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write bench/results/same_room.json."""
    from tests.shared_data import shared_data_dir

    args = parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None:
        print("../shared/data is absent; set FLATSITE_SHARED_DATA", file=sys.stderr)
        return 2
    tag = config_tag()
    houses = house_paths(data_dir)
    stored = compute_records(
        f"houses_{tag}",
        [(f"houses/{p.name}", _loader(p, None, "")) for p in houses],
        CFG,
        on_step=Progress("houses"),
    )
    views = multiview_photos(data_dir)
    mv = compute_records(
        f"multiview_{tag}", [(f"multiview/{r}/{p.name}", _loader(p, None, "")) for p, r in views], CFG
    )
    centre = np.mean([r.embedding for r in stored], axis=0) if args.centre else None
    collection = Collection([*stored, *mv], centre)
    ctag = "_centred" if args.centre else ""
    rooms = {len(stored) + j: room for j, (_, room) in enumerate(views)}
    queries = [(len(stored) + j, rec) for j, rec in enumerate(mv)]
    mv_rows = rows_for(collection, queries, args.k, f"multiview{ctag}")
    split = calibrate.house_split(houses, args.seed)
    groups = duplicate_groups(stored)
    linked = calibrate.linked_photos(houses, groups)
    calib = calibrate.calibration_rows(collection, stored, split["calib"], args.k, ctag)
    t = calibrate.calibrate(calib, linked, LevelThresholds(), houses, collection, split["calib"])
    house_q = [
        (i, replace(stored[i], key=f"{stored[i].key}#{i}")) for i in split["test"][: args.house_queries]
    ]
    house_rows = rows_for(collection, house_q, args.k, f"houses_s{args.seed}{ctag}")
    report: dict[str, Any] = {"machine": MACHINE, "args": vars(args), "thresholds": t.to_dict()}
    keys = {rec.key: i for i, rec in queries}
    report["multiview"] = evaluate(mv_rows, rooms, keys, t)
    report["multiview"]["floor_sensitivity"] = {
        f: evaluate(mv_rows, rooms, keys, replace(t, similar_min_score=f))["recall@5"]
        for f in (0.4, 0.45, 0.5)
    }
    report["house_queries"] = house_false_matches(house_rows, linked, t)
    if args.centre:
        items = [(f"houses/{p.name}", _loader(p, None, "")) for p in houses]
        items += [(f"multiview/{r}/{p.name}", _loader(p, None, "")) for p, r in views]
        report["rerank"] = rerank_report(collection, items, len(stored), mv_rows, rooms, keys, t)
    calibrate.print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"same_room{ctag}.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
