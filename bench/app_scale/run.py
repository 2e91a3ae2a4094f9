"""App at scale: N photos through the app's own models, services and index code, searched over HTTP.

python -m bench.app_scale [--photos 100000] [--real 200] [--queries 100] [--peer-max 100000] [--json OUT]

A fresh app (temporary data folder, SQLite) imports --real Houses photos inline (real features for the
active encoders). Synthetic photos (Listing/Photo/Feature rows, clustered unit vectors around the real
features, bulk_create in chunks of 5 000) grow it: at 10 000 photos every index is rebuilt (index_rebuild),
a 100-photo add is timed (index_add per encoder, median of 3) and a web process is started to read its
memory; then batches of 10 000 are appended (index_add: one segment each) up to N, every index is compacted
(index_compact force=True), the 100-photo add is timed again, and one web process (python -m flatsite.web)
answers --queries edited copies of the real photos on POST /api/search/. recall@10 of the live index is
checked against exact search over every stored vector; bare FAISS (flat, IVF-PQ) and Milvus (milvus-lite,
at most --peer-max rows) run on the same vectors. Prints a table; writes bench/results/app_scale_<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.app_scale.stages import BASE
from bench.common.paths import RESULTS, ROOT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--photos", type=int, default=100_000, help="collection size N (real photos included)")
    p.add_argument("--real", type=int, default=200, help="real Houses photos imported inline")
    p.add_argument("--queries", type=int, default=100, help="edited-copy searches over HTTP at N")
    p.add_argument("--recall-queries", type=int, default=200)
    p.add_argument("--peer-max", type=int, default=100_000, help="most rows given to Milvus")
    p.add_argument("--milvus-index", default="HNSW", help="MilvusBackend index type (FLAT, IVF_FLAT, HNSW)")
    p.add_argument("--centres", type=int, default=2000, help="synthetic cluster centres per encoder")
    p.add_argument("--spread", type=float, default=1.0, help="noise norm moving a centre off a real vector")
    p.add_argument("--noise", type=float, default=0.6, help="noise norm of a photo around its centre")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data, database, logs)")
    p.add_argument("--json", type=Path, default=None, help="default bench/results/app_scale_<N>.json")
    args = p.parse_args(argv)
    if args.photos < BASE or not 1 <= args.real <= 800 or args.queries < 1:
        p.error(f"--photos >= {BASE}, 1 <= --real <= 800 and --queries >= 1 please")
    return args


def machine() -> dict[str, Any]:
    """CPU count, RAM, Python and library versions."""
    import faiss
    import torch

    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cpus": os.cpu_count(),
        "ram_gb": round(int(mem.split()[1]) / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "platform": platform.platform(),
        "load_at_start": os.getloadavg()[0],
    }


def _stage_small(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """Grow to 10 000 photos, rebuild, time the 100-photo add, read the web process's memory."""
    from bench.app_scale import stages, web
    from bench.app_scale.rows import synth_rows_only

    synth, encoders = ctx["synth"], ctx["encoders"]
    synth_rows_only(synth, BASE - stages.photo_count())
    build = stages.rebuild_all(encoders)
    print(f"10k: rebuilt {', '.join(f'{e} {s:.1f} s' for e, s in build.items())}", flush=True)
    add = stages.add_measure(synth)
    session = web.search_session(ctx["data"], ctx["logs"], ctx["account"], ctx["queries"][:10], warm=3)
    print(
        f"10k: add {add['ms_per_photo']:.2f} ms/photo; web RSS {session['rss_warm']['main']:.0f} MB",
        flush=True,
    )
    return {"build": build, "add": add, "web": session, "photos": stages.photo_count()}


def _stage_large(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """Grow to N with 10 000-photo index_add batches, compact, time the 100-photo add, search over HTTP."""
    from bench.app_scale import stages, web

    synth, encoders = ctx["synth"], ctx["encoders"]
    growth = stages.grow_to(synth, args.photos)
    compaction_s, compaction = stages.compact_all(encoders)
    print(f"N: compacted in {compaction_s:.1f} s", flush=True)
    add = stages.add_measure(synth)
    disk, memory = stages.index_bytes(encoders), stages.memory_bytes(encoders)
    session = web.search_session(ctx["data"], ctx["logs"], ctx["account"], ctx["queries"], warm=3)
    print(f"N: add {add['ms_per_photo']:.2f} ms/photo; {len(session['ms'])} searches", flush=True)
    return {
        "growth": growth,
        "compaction_s": compaction_s,
        "compaction": compaction,
        "add": add,
        "disk": disk,
        "memory": memory,
        "web": session,
        "photos": stages.photo_count(),
    }


def _quality(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """recall@10 of the live search index, then the peers on the same vectors and queries."""
    import faiss

    from bench.app_scale import peers, quality, stages

    faiss.omp_set_num_threads(int(os.environ.get("FLATSITE_FAISS_THREADS", "1") or 1))
    encoder = ctx["encoders"][0]
    index = stages.live_indexes([encoder])[encoder]
    rec = quality.live_recall(ctx["synth"], encoder, index, ctx["real_ids"], args.recall_queries)
    q, truth = rec.pop("prepared"), rec.pop("truth")
    found: dict[str, Any] = {"app index (in-process)": peers.app_index_peer(index, q, truth)}
    found.update(peers.faiss_peers(index, q, truth))
    try:
        found["milvus-lite " + args.milvus_index] = peers.milvus_peer(
            index, q, truth, args.peer_max, args.milvus_index
        )
    except Exception as exc:  # reported, not hidden: the peer's absence is part of the result
        found["milvus-lite " + args.milvus_index] = f"failed: {exc.__class__.__name__}: {exc}"
    print(f"recall@10 {rec['recall_at_10']:.3f}", flush=True)
    return {"recall": rec, "peers": found, "encoder": encoder}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every step of one run; returns the result document."""
    from bench.common.app import collection_import, shared_or_exit

    started, t0 = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
    shared = shared_or_exit()
    os.environ["DEBUG"] = "0"  # DEBUG would keep every SQL query of the bulk rows in memory
    os.environ["FLATSITE_ALLOW_DEV_KEY"] = "1"  # DEBUG off needs a key; a throwaway app may use the dev one
    host = machine()
    work, import_s = collection_import(shared, args.real)
    try:
        result = _measure(args, shared, work, import_s, host)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["started"], result["finished"] = started, datetime.now(UTC).isoformat(timespec="seconds")
    result["wall_s"] = time.perf_counter() - t0
    return result


def _measure(
    args: argparse.Namespace, shared: Path, work: Path, import_s: float, host: dict[str, Any]
) -> dict[str, Any]:
    """Build the collection in stages and measure it (the app is set up on ``work``)."""
    from bench.app_scale import stages, web
    from bench.app_scale.result import assemble
    from bench.app_scale.rows import synth_setup
    from search.matching.feature_reads import feature_ids
    from search.matching.features import active_encoders

    encoders = active_encoders()
    real_photos = stages.photo_count()
    real_ids = feature_ids(encoders[0])
    synth = synth_setup(encoders, centres=args.centres, spread=args.spread, noise=args.noise, seed=args.seed)
    print(f"imported {real_photos} real photos in {import_s:.0f} s; encoders {encoders}", flush=True)
    ctx = {
        "synth": synth,
        "encoders": encoders,
        "real_ids": real_ids,
        "data": work / "data",
        "logs": work / "logs",
        "account": web.searcher_create(),
        "queries": web.queries_make(shared / "houses", args.queries, args.seed),
    }
    small = _stage_small(args, ctx)
    large = _stage_large(args, ctx)
    qual = _quality(args, ctx)
    return assemble(args, host, real_photos, import_s, synth, small, large, qual)


def main(argv: list[str] | None = None) -> None:
    """Run, write the JSON, print the table."""
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result = run(args)
    out = args.json or RESULTS / f"app_scale_{args.photos}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    from bench.app_scale.report import table

    print(table(result))
    print(f"wrote {out}")
