"""Calibration of the 'same room' and 'similar look' thresholds on listing photos (bench.same_room)."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.match_levels import CACHE, CandidateRow, Collection, PhotoRecord, Progress, load_rows
from bench.edited_copies.near_duplicates import CFG, house_halves, verify_tag
from search.ml.match.levels import LevelThresholds

# Ratio / coverage pairs tried; for each, min inliers is set above every unrelated-listing pair seen.
RATIO_COVERAGE = [(r, c) for r in (0.2, 0.3, 0.4, 0.5) for c in (0.05, 0.1, 0.15, 0.2)]
MARGIN = 1.25  # safety factor on the strongest false match seen in calibration
MIN_INLIERS_FLOOR = 20
SIMILAR_ROOM_TYPE_PRECISION = 0.5  # "similar" = more likely than not the same kind of room


def house_split(houses: list[Path], seed: int) -> dict[str, list[int]]:
    """Photo indices of the calibration and test halves, as bench.edited_copies splits houses."""
    halves = house_halves(houses, random.Random(seed))
    return {
        name: [i for i, p in enumerate(houses) if int(p.stem.split("_")[0]) in members]
        for name, members in halves.items()
    }


def linked_photos(houses: list[Path], groups: list[int]) -> dict[int, set[int]]:
    """Per photo: photos of its own listing and of listings sharing a same-photo group with it."""
    house_of = [int(p.stem.split("_")[0]) for p in houses]
    related: dict[int, set[int]] = defaultdict(set)
    by_group: dict[int, set[int]] = defaultdict(set)
    for i, g in enumerate(groups):
        by_group[g].add(house_of[i])
    for listings in by_group.values():
        for h in listings:
            related[h] |= listings
    return {
        i: {j for j, hj in enumerate(house_of) if hj in related[house_of[i]] | {house_of[i]}}
        for i in range(len(houses))
    }


def calibration_rows(
    collection: Collection, stored: list[PhotoRecord], indices: list[int], k: int, tag: str
) -> list[CandidateRow]:
    """Listing photos of the calibration houses against the listing photos only (no multiview photo)."""
    path = CACHE / f"sr_rows_{verify_tag()}{tag}_calib_k{k}.jsonl"
    rows = load_rows(path)
    done = {r.query for r in rows}
    multiview = list(range(len(stored), len(collection.records)))
    todo = [i for i in indices if f"{stored[i].key}#{i}" not in done]
    progress = Progress("same-room calibration")
    with path.open("a") as fh:
        for n, i in enumerate(todo, 1):
            rec = replace(stored[i], key=f"{stored[i].key}#{i}")
            for row in collection.candidates(rec, k, CFG, exclude=[i, *multiview]):
                fh.write(json.dumps(row.__dict__) + "\n")
                rows.append(row)
            fh.flush()
            progress(n, len(todo))
    return rows


def _negatives(rows: list[CandidateRow], linked: dict[int, set[int]]) -> list[CandidateRow]:
    return [r for r in rows if r.cand not in linked[int(r.query.split("#")[1])] and r.verification]


def _strongest(rows: list[CandidateRow], ratio: float, cover: float) -> int:
    best = 0
    for r in rows:
        v = r.verification or {}
        if v.get("inlier_ratio", 0.0) >= ratio and v.get("coverage", 0.0) >= cover:
            best = max(best, int(v.get("inliers", 0)))
    return best


def calibrate(
    rows: list[CandidateRow],
    linked: dict[int, set[int]],
    base: LevelThresholds,
    houses: list[Path],
    collection: Collection,
    indices: list[int],
) -> LevelThresholds:
    """Same-room thresholds above every unrelated-listing pair (x MARGIN) and the similar-look floor."""
    negatives = _negatives(rows, linked)
    options = []
    for ratio, cover in RATIO_COVERAGE:
        needed = max(MIN_INLIERS_FLOOR, math.ceil(MARGIN * (_strongest(negatives, ratio, cover) + 1)))
        # Fewest inliers wins (most recall); then the loosest ratio/coverage.
        options.append((needed, ratio, cover))
    needed, ratio, cover = min(options)
    floor = similar_floor(collection, indices, linked, houses)
    return replace(
        base,
        same_room_min_inliers=needed,
        same_room_min_inlier_ratio=ratio,
        same_room_min_coverage=cover,
        similar_min_score=floor,
    )


def similar_floor(
    collection: Collection, indices: list[int], linked: dict[int, set[int]], houses: list[Path]
) -> float:
    """Lowest cosine above which SIMILAR_ROOM_TYPE_PRECISION of unrelated listing pairs share a room type."""
    room = np.array([houses[i].stem.split("_")[1] for i in indices])
    emb = collection.matrix[indices]  # (n, D), in the space the global search compares
    sims = emb @ emb.T
    upper = np.triu_indices(len(indices), 1)
    unrelated = np.array([indices[b] not in linked[indices[a]] for a, b in zip(*upper, strict=True)])
    scores = sims[upper][unrelated]
    same = (room[upper[0]] == room[upper[1]])[unrelated]
    order = np.argsort(-scores)
    precision = np.cumsum(same[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= SIMILAR_ROOM_TYPE_PRECISION)
    return round(float(scores[order][ok[-1]]), 3) if len(ok) else 0.5


def print_report(report: dict[str, Any]) -> None:
    """The same-room table."""
    mv = report["multiview"]
    print("\nSame room, other angle (multiview photos among 800 listing photos)")
    print(f"{'room':24s} {'n':>3s} {'recall@5':>8s}")
    for room, r in sorted(mv["per_room"].items()):
        print(f"{room:24s} {r['n']:3d} {r['recall@5']:8.3f}")
    print(
        f"recall@5 averaged per room:  matcher {mv['recall@5']:.3f}  without floor "
        f"{mv['ranking_recall@5']:.3f}  plain cosine {mv['cosine_recall@5']:.3f}"
    )
    for floor, value in mv.get("floor_sensitivity", {}).items():
        print(f"  recall@5 per room if the similar floor were {floor}: {value:.3f}")
    print(
        f"ScanNet rooms only:         matcher {mv['recall@5_scannet']:.3f}  without floor "
        f"{mv['ranking_recall@5_scannet']:.3f}  plain cosine {mv['cosine_recall@5_scannet']:.3f}"
    )
    for name, v in mv["level_precision"].items():
        print(f"level precision ({name}): {v['precision']:.3f} ({v['correct']}/{v['total']})")
    rr = report.get("rerank")
    if rr is not None:
        print(
            f"re-ranked similar level (search.ml.match.rerank): recall@5 {rr['recall@5']:.3f}  "
            f"ScanNet {rr['recall@5_scannet']:.3f}  same-room precision "
            f"{rr['level_precision']['same_room']['precision']:.3f}  CPU: re-score 30 "
            f"{rr['cpu_ms_rescore_30']:.2f} ms, Lite2 query embedding "
            f"{rr['cpu_ms_lite2_query_embedding']:.0f} ms"
        )
        for name, value in rr["sensitivity"].items():
            print(f"  {name}: recall@5 {value:.3f}")
    h = report["house_queries"]
    print(
        f"listing-photo queries: {h['queries']}, false same-room matches {h['same_room_false']}, "
        f"false edited/exact matches {h['edited_false']}"
    )
    print(f"thresholds: {report['thresholds']}")
