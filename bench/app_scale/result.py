"""The result document of one run: the brief's top-level keys, then the details they came from."""

from __future__ import annotations

import argparse
from typing import Any

from bench.app_scale.report import growth_per_100k, latency_summary, ratio, targets
from bench.app_scale.rows import Synth
from bench.app_scale.stages import BASE


def _edited(levels: list[str | None]) -> dict[str, Any]:
    found = sum(1 for level in levels if level is not None)
    exact = sum(1 for level in levels if level == "exact")
    return {
        "found": found,
        "total": len(levels),
        "share": found / len(levels) if levels else None,
        "as_exact": exact,
    }


def _web_public(session: dict[str, Any]) -> dict[str, Any]:
    """A web session without the per-query lists that are summarised elsewhere."""
    return {k: v for k, v in session.items() if k not in ("ms", "levels", "timings")}


def _stages_p95(timings: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for t in timings for k, v in t.items() if isinstance(v, int | float)})
    return {
        k: latency_summary([float(t[k]) for t in timings if isinstance(t.get(k), int | float)]) for k in keys
    }


def assemble(
    args: argparse.Namespace,
    host: dict[str, Any],
    real_photos: int,
    import_s: float,
    synth: Synth,
    small: dict[str, Any],
    large: dict[str, Any],
    qual: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document (top-level keys as bench/README.md's entry names them)."""
    n = int(large["photos"])
    lat = latency_summary(large["web"]["ms"])
    rss_small, rss_large = small["web"]["rss_warm"]["main"], large["web"]["rss_warm"]["main"]
    add_small, add_large = small["add"]["ms_per_photo"], large["add"]["ms_per_photo"]
    result: dict[str, Any] = {
        "photos": n,
        "photos_asked": args.photos,
        "real_photos": real_photos,
        "search_p50_ms": lat["p50_ms"],
        "search_p95_ms": lat["p95_ms"],
        "queries": lat["n"],
        "recall_at_10": qual["recall"]["recall_at_10"],
        "edited_found": _edited(large["web"]["levels"]),
        "add_batch_ms_per_photo": {"10k": add_small, "N": add_large},
        "add_cost_ratio_100k_vs_10k": ratio(add_large, add_small),
        "add_cpu_ms_per_photo": {
            "10k": small["add"]["cpu_ms_per_photo"],
            "N": large["add"]["cpu_ms_per_photo"],
        },
        "add_cpu_cost_ratio": ratio(large["add"]["cpu_ms_per_photo"], small["add"]["cpu_ms_per_photo"]),
        "web_rss_mb": {"10k": rss_small, "N": rss_large},
        # Nominal sizes (N and 10 000): the stages also hold the 300 photos of the timed adds.
        "web_rss_mb_per_100k": growth_per_100k(rss_large, rss_small, args.photos, BASE),
        "web_rss_anon_mb_per_100k": growth_per_100k(
            large["web"]["rss_warm"]["anon"], small["web"]["rss_warm"]["anon"], args.photos, BASE
        ),
        "build_s": sum(small["build"].values()),
        "bulk_rows_s": synth.bulk_s,
        "compaction_s": large["compaction_s"],
        "bytes_per_photo_disk": large["disk"]["total_folder"] / n,
        "bytes_per_photo_memory": large["memory"]["total"] / n,
        "bytes_per_photo_mapped": large["memory"]["mapped"] / n,
        "peers": qual["peers"],
        "machine": host,
    }
    result["targets"] = targets(result)
    result["details"] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "import_s": import_s,
        "synthetic_photos": synth.made,
        "photos_at_10k_stage": small["photos"],
        "build_s_per_encoder": small["build"],
        "add_10k": small["add"],
        "add_N": large["add"],
        "growth": large["growth"],
        "compaction": large["compaction"],
        "disk_bytes": large["disk"],
        "disk_bytes_per_photo_live": sum(v["live"] for k, v in large["disk"].items() if isinstance(v, dict))
        / n,
        "memory_bytes": large["memory"],
        "web_10k": _web_public(small["web"]),
        "web_N": _web_public(large["web"]),
        "search_stage_ms": _stages_p95(large["web"]["timings"]),
        "search_mean_ms": lat["mean_ms"],
        "recall": qual["recall"],
        "recall_encoder": qual["encoder"],
        "web_rss_mb_per_100k_note": "web VmRSS after 3 warm-up searches: N stage minus 10k stage",
        "milvus_capped": any(isinstance(p, dict) and p.get("capped") for p in qual["peers"].values()),
    }
    return result
