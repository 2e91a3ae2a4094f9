"""Near-duplicate benchmark: edited copies of house photos against the collection, vs imagededup hashes.

python -m bench.edited_copies [--originals 400] [--edits-per-original 9] [--seed 0] [--k 30]

Houses are split in two halves by --seed: thresholds are calibrated on the "calib" half's edited copies and
reported on the "test" half's. In each half 10 % of the sources are left out of the collection, so their
copies are negative queries (unless a same-photo duplicate of them is stored). Originals that are the same
photo (equal pixels or near-identical hashes; houses 9/21, 59/72, a recurring stock facade, ...) form one
group and a match to any member counts as correct. Reference: houses dataset of Ahmed and Moustafa,
"House price estimation from visual and textual features", IJCCI 2016.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.match_levels import (
    CACHE,
    MACHINE,
    RESULTS,
    Collection,
    PhotoRecord,
    Progress,
    compute_records,
    duplicate_groups,
    load_rows,
)
from bench.edited_copies import calibrate, imagededup_peer
from search.ml.images.edits import BENCH_EDITS, apply_edit
from search.ml.match.levels import LevelThresholds
from search.ml.match.local import LocalConfig

CFG = LocalConfig()


@dataclass
class Query:
    key: str
    source: int  # index of the original in the houses list
    kind: str
    positives: frozenset[int]  # collection indices counted as correct


@dataclass
class Split:
    name: str
    queries: list[Query]
    absent: frozenset[int]


def house_paths(data_dir: Path) -> list[Path]:
    """The 800 listing photos, ordered by house then room."""
    paths = list((data_dir / "houses").glob("*.jpg"))
    return sorted(paths, key=lambda p: (int(p.stem.split("_")[0]), p.stem.split("_")[1]))


def house_halves(paths: list[Path], rng: random.Random) -> dict[str, set[int]]:
    """House numbers of the calibration and test halves (the rng is the split seed's)."""
    houses = sorted({int(p.stem.split("_")[0]) for p in paths})
    rng.shuffle(houses)
    return {"calib": set(houses[: len(houses) // 2]), "test": set(houses[len(houses) // 2 :])}


def make_splits(paths: list[Path], groups: list[int], args: argparse.Namespace) -> list[Split]:
    """Calibration and test splits over disjoint houses, with balanced edit kinds per split."""
    rng = random.Random(args.seed)
    halves = house_halves(paths, rng)
    kinds = list(BENCH_EDITS)
    splits = []
    for name, members in halves.items():
        sources = [i for i, p in enumerate(paths) if int(p.stem.split("_")[0]) in members]
        rng.shuffle(sources)
        sources = sources[: args.originals if name == "test" else args.calib_originals]
        absent = frozenset(sources[: max(1, round(len(sources) * args.absent_share))])
        cycle: list[str] = []
        queries = []
        for src in sources:
            chosen: list[str] = []
            while len(chosen) < args.edits_per_original:
                if not cycle:
                    cycle = kinds.copy()
                    rng.shuffle(cycle)
                kind = cycle.pop()
                if kind not in chosen:
                    chosen.append(kind)
            positives = frozenset(j for j, g in enumerate(groups) if g == groups[src] and j not in absent)
            key = f"s{args.seed}/{name}/{paths[src].stem}/{{}}"
            queries += [Query(key.format(kind), src, kind, positives) for kind in chosen]
        splits.append(Split(name, queries, absent))
    return splits


def _loader(path: Path, kind: str | None, key: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        return rgb if kind is None else apply_edit(rgb, kind, random.Random(key), BENCH_EDITS)

    return load


def query_records(paths: list[Path], split: Split, tag: str) -> list[PhotoRecord]:
    """Edited copies' records (embedding of copy and mirror, hashes, SIFT, imagededup hashes), cached."""
    items = [(q.key, _loader(paths[q.source], q.kind, q.key)) for q in split.queries]
    return compute_records(
        f"nd_queries_{tag}",
        items,
        CFG,
        extras=imagededup_peer.encode_all,
        on_step=Progress(f"{split.name} copies"),
    )


def candidate_rows(
    collection: Collection, split: Split, records: list[PhotoRecord], k: int, tag: str
) -> Path:
    """Verify each copy's global top-k; rows are appended to a JSON-lines cache so runs resume."""
    path = CACHE / f"nd_rows_{verify_tag()}_{split.name}_k{k}.jsonl"
    done = {row.query for row in load_rows(path)}
    todo = [r for r in records if r.key not in done]
    progress = Progress(f"{split.name} verification")
    with path.open("a") as fh:
        for n, rec in enumerate(todo, 1):
            for row in collection.candidates(rec, k, CFG, exclude=split.absent):
                fh.write(json.dumps(row.__dict__) + "\n")
            fh.flush()
            progress(n, len(todo))
    return path


def config_tag() -> str:
    """Cache namespace for the current encoder + local feature extraction settings."""
    return f"lite0_s{CFG.max_side}_n{CFG.n_features}"


def verify_tag() -> str:
    """Cache namespace for verification rows: extraction plus matching settings."""
    digest = hashlib.sha1(repr(CFG).encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{config_tag()}_v{digest}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--originals", type=int, default=300, help="test sources (max 400)")
    parser.add_argument("--calib-originals", type=int, default=150, help="calibration sources (max 400)")
    parser.add_argument("--edits-per-original", type=int, default=9)
    parser.add_argument("--absent-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=30, help="global shortlist verified per query")
    parser.add_argument("--skip-imagededup", action="store_true")
    parser.add_argument(
        "--only", choices=["calib", "test"], help="only fill the caches of one split, then exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables and write bench/results/near_duplicates.json."""
    from tests.shared_data import shared_data_dir

    args = parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None:
        print("../shared/data is absent; set FLATSITE_SHARED_DATA", file=sys.stderr)
        return 2
    tag = config_tag()
    paths = house_paths(data_dir)
    loaders = [(f"houses/{p.name}", _loader(p, None, "")) for p in paths]
    stored = compute_records(
        f"houses_{tag}", loaders, CFG, extras=imagededup_peer.encode_all, on_step=Progress("collection")
    )
    groups = duplicate_groups(stored)
    collection = Collection(stored)
    splits = make_splits(paths, groups, args)
    report: dict[str, object] = {"args": vars(args), "machine": MACHINE, "config": tag}
    rows_by_split = {}
    for split in splits:
        if args.only and split.name != args.only:
            continue
        records = query_records(paths, split, tag)
        start = time.perf_counter()
        rows_path = candidate_rows(collection, split, records, args.k, tag)
        rows_by_split[split.name] = (split, records, load_rows(rows_path))
        report[f"{split.name}_verify_s"] = time.perf_counter() - start
    if args.only:
        return 0
    calib_split, _, calib_rows = rows_by_split["calib"]
    thresholds = calibrate.calibrate_edited(calib_split.queries, calib_rows, LevelThresholds())
    report["thresholds"] = thresholds.to_dict()
    report["calib"] = calibrate.evaluate(calib_split.queries, calib_rows, thresholds)
    test_split, test_records, test_rows = rows_by_split["test"]
    report["test"] = calibrate.evaluate(test_split.queries, test_rows, thresholds)
    if not args.skip_imagededup:
        report["imagededup"] = imagededup_peer.evaluate(
            test_split.queries, test_records, stored, test_split.absent
        )
    report["groups"] = _group_summary(paths, groups)
    calibrate.print_report(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "near_duplicates.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


def _group_summary(paths: list[Path], groups: list[int]) -> list[list[str]]:
    members: dict[int, list[str]] = defaultdict(list)
    for p, g in zip(paths, groups, strict=True):
        members[g].append(p.stem)
    return sorted(m for m in members.values() if len(m) > 1)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
