"""Statistics and the printed table of `python -m bench.load` (no Django here)."""

from __future__ import annotations

import os
import time
from typing import Any

# The report row of a search answered 503 "busy" and sent again (bench/load/locustfile.py names it).
SEARCH_BUSY = "search busy (503, retried)"
ENDPOINTS = (
    "search",
    SEARCH_BUSY,
    "upload-acknowledge",
    "listing page",
    "job poll",
    "login",
)
TARGETS_MS = {"search": 300.0, "upload-acknowledge": 500.0}  # p95 targets of issue 6
MAX_ERROR_RATE = 0.001


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def endpoint_stats(records: list[list[Any]]) -> dict[str, dict[str, Any]]:
    """Per request name: count, failures and latency percentiles (ms)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(
        {r[0] for r in records},
        key=lambda n: (n not in ENDPOINTS, ENDPOINTS.index(n) if n in ENDPOINTS else 0, n),
    ):
        times = [r[1] for r in records if r[0] == name]
        failures = sum(1 for r in records if r[0] == name and not r[2])
        out[name] = {
            "requests": len(times),
            "failures": failures,
            "p50_ms": round(percentile(times, 0.50), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
            "max_ms": round(max(times), 1),
        }
    return out


def took_summary(values: list[float]) -> dict[str, float]:
    """p50 / p95 of the server-side search time the API reports (took_ms)."""
    if not values:
        return {}
    return {"p50_ms": round(percentile(values, 0.5), 1), "p95_ms": round(percentile(values, 0.95), 1)}


def e2e_summary(rows: list[list[float]]) -> dict[str, float]:
    """Search tasks from first request to final answer (busy waits included): p50 / p95 and retry share."""
    if not rows:
        return {}
    times = [row[0] for row in rows]
    retried = sum(1 for row in rows if row[1] > 0)
    return {
        "searches": len(rows),
        "p50_ms": round(percentile(times, 0.5), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "retried_share": round(retried / len(rows), 4),
    }


def stages_summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 / p95 of each stage the search answers time (global embedding + shortlist, verification)."""
    stages = sorted({stage for row in rows for stage in row})
    return {stage: took_summary([row[stage] for row in rows if stage in row]) for stage in stages}


def cpu_summary(samples: list[dict[str, float]], requests: int) -> dict[str, float]:
    """CPU seconds the web and worker used during the run, per wall second and per request."""
    wall = max(1.0, samples[-1]["t"] - samples[0]["t"])
    web = samples[-1]["web_cpu_s"] - samples[0]["web_cpu_s"]
    worker = samples[-1]["worker_cpu_s"] - samples[0]["worker_cpu_s"]
    return {
        "web_cpu_s": round(web, 1),
        "web_cores_used": round(web / wall, 2),
        "web_cpu_ms_per_request": round(1000 * web / max(1, requests), 1),
        "worker_cpu_s": round(worker, 1),
        "worker_cores_used": round(worker / wall, 2),
    }


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, in value per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mx) * (v - my) for t, v in samples) / var


def second_half(samples: list[dict[str, float]]) -> list[dict[str, float]]:
    """The samples taken in the second half of the run, where growth means more than warm-up."""
    return [s for s in samples if s["t"] >= samples[-1]["t"] / 2]


def rss_summary(samples: list[dict[str, float]], key: str) -> dict[str, float]:
    """Start / max / end (MB) of one sampled memory series and its slope (MB/min), whole run and 2nd half."""
    series = [(s["t"], s[key]) for s in samples]
    half = [(s["t"], s[key]) for s in second_half(samples)]
    return {
        "start_mb": round(series[0][1], 1),
        "max_mb": round(max(v for _, v in series), 1),
        "end_mb": round(series[-1][1], 1),
        "slope_mb_per_min": round(slope_per_minute(series), 2),
        "slope_2nd_half_mb_per_min": round(slope_per_minute(half), 2),
    }


def web_memory(samples: list[dict[str, float]]) -> dict[str, float]:
    """The web process's RSS summary plus the growth its cached indexes explain (MB/min, 2nd half)."""
    out = rss_summary(samples, "web")
    half = second_half(samples)
    # Every uploaded photo adds its vectors to the live indexes the web process keeps in memory: growth
    # that follows the collection's size, not a leak. Samples without index sizes explain nothing.
    index = slope_per_minute([(s["t"], s.get("index_mb", 0.0)) for s in half])
    out["index_slope_2nd_half_mb_per_min"] = round(index, 2)
    out["net_slope_2nd_half_mb_per_min"] = round(out["slope_2nd_half_mb_per_min"] - index, 2)
    return out


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    """Pass / fail lines against the issue's load targets."""
    out = {}
    rate = result["error_rate"]
    out["error rate < 0.1 %"] = f"{'met' if rate < MAX_ERROR_RATE else 'NOT met'} ({100 * rate:.3f} %)"
    for name, target in TARGETS_MS.items():
        p95 = result["endpoints"].get(name, {}).get("p95_ms")
        if p95 is None:
            out[f"{name} p95 < {target:.0f} ms"] = "no requests"
        else:
            out[f"{name} p95 < {target:.0f} ms"] = f"{'met' if p95 < target else 'NOT met'} ({p95:.0f} ms)"
    e2e = result.get("search_end_to_end") or {}
    if e2e.get("retried_share"):
        out["search p95 < 300 ms"] += (
            f"; {100 * e2e['retried_share']:.1f} % of searches were answered busy first "
            f"(end-to-end p95 {e2e['p95_ms']:.0f} ms with the retries)"
        )
    rss = result["web_rss"]
    # RSS rises while the first searches load models and per-thread buffers; a leak shows as growth
    # that continues through the second half of the run beyond what the growing indexes take.
    index = rss.get("index_slope_2nd_half_mb_per_min", 0.0)
    net = rss.get("net_slope_2nd_half_mb_per_min", rss["slope_2nd_half_mb_per_min"])
    out["web memory flat"] = (
        f"{'no growth' if net < 1.0 else 'GROWING'} in the 2nd half beyond the indexes' growth "
        f"({net:+.2f} MB/min: RSS {rss['slope_2nd_half_mb_per_min']:+.2f}, indexes {index:+.2f}); "
        f"{rss['start_mb']:.0f} MB idle -> max {rss['max_mb']:.0f}, end {rss['end_mb']:.0f} MB"
    )
    photos = result["photos"]
    lost = photos["lost"]
    out["no photo lost"] = f"{'met' if not lost else 'NOT met'} ({lost} acknowledged photos missing)"
    return out


def table(result: dict[str, Any]) -> str:
    """The printed report."""
    lines = [
        f"{'endpoint':<26} {'requests':>8} {'fail':>5} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    ]
    for name, s in result["endpoints"].items():
        lines.append(
            f"{name:<26} {s['requests']:>8} {s['failures']:>5} {s['p50_ms']:>8.0f} {s['p95_ms']:>8.0f} "
            f"{s['p99_ms']:>8.0f} {s['max_ms']:>8.0f}"
        )
    lines.append(
        f"{'all':<26} {result['requests']:>8} {result['errors']:>5}   "
        f"error rate {100 * result['error_rate']:.3f} %"
        f", {result['requests_per_s']:.2f} req/s"
    )
    took = result["search_server_took_ms"]
    if took:
        lines.append(
            f"search inside the view (image_search took_ms): p50 {took['p50_ms']:.0f} ms, "
            f"p95 {took['p95_ms']:.0f} ms"
        )
    django = result.get("search_in_django_ms") or {}
    if django:
        lines.append(
            f"search in Django (Server-Timing, middleware to response): p50 {django['p50_ms']:.0f} ms, "
            f"p95 {django['p95_ms']:.0f} ms"
        )
    stages = result.get("search_stages_ms") or {}
    if stages:
        lines.append(
            "search stages (p50 / p95 ms): "
            + ", ".join(f"{stage} {v['p50_ms']:.0f} / {v['p95_ms']:.0f}" for stage, v in stages.items())
        )
    e2e = result.get("search_end_to_end") or {}
    if e2e:
        lines.append(
            f"search end to end (busy answers retried after Retry-After): p50 {e2e['p50_ms']:.0f} ms, "
            f"p95 {e2e['p95_ms']:.0f} ms; {100 * e2e['retried_share']:.1f} % of {e2e['searches']} "
            "searches retried"
        )
    for key in ("web_rss", "web_rss_with_decoders", "worker_rss"):
        r = result[key]
        lines.append(
            f"{key:<22} start {r['start_mb']:.0f} MB, max {r['max_mb']:.0f}, end {r['end_mb']:.0f}, "
            f"slope {r['slope_mb_per_min']:+.2f} MB/min (2nd half {r['slope_2nd_half_mb_per_min']:+.2f})"
        )
    c = result["cpu"]
    lines.append(
        f"CPU during the run: web {c['web_cpu_s']:.0f} s ({c['web_cores_used']:.2f} cores, "
        f"{c['web_cpu_ms_per_request']:.0f} ms/request), worker {c['worker_cpu_s']:.0f} s "
        f"({c['worker_cores_used']:.2f} cores)"
    )
    p = result["photos"]
    lines.append(
        f"photos: acknowledged {p['acknowledged']}, final at end of run {p['final_at_end']}, "
        f"final after grace {p['final_after_grace']} ({p['settle_s']} s), "
        f"indexed {p['indexed_after_grace']}, "
        f"lost {p['lost']}; outcomes {p['outcomes']}; statuses {p['statuses_after_grace']}"
    )
    lines.append(f"queue backlog at end of run: {result['backlog_at_end']}")
    lines.append(f"load average (1 min) start / mean / max: {result['load_average']}")
    lines.extend(f"{k}: {v}" for k, v in result["verdicts"].items())
    return "\n".join(lines)


def summarise(
    args: dict[str, Any], raw: dict[str, Any], samples: list[dict[str, float]], facts: dict[str, Any]
) -> dict[str, Any]:
    """The result document (see bench/README.md, "Load test") from the raw records and run facts."""
    records = raw["records"]
    failed = [r for r in records if not r[2]]
    span = max(r[4] for r in records) - min(r[4] for r in records) if records else 1.0
    loads = [s["load1"] for s in samples]
    states = facts["states"]
    result: dict[str, Any] = {
        "machine": os.environ.get(
            "BENCH_MACHINE", "2-core x86_64 VM, 24 GiB, CPU only, shared with other agents"
        ),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "users": args["users"],
            "minutes": args["minutes"],
            "spawn_rate_per_s": args["spawn_rate"],
            "think_time_s": "between(3, 15)",
            "task_weights": "search 3, listing page 2, job poll 2, upload 1-3 photos 1",
            "seeded_photos": args["photos"],
            "seed_import_s": round(facts["seed_s"], 1),
            "database": facts["database"],
            "nice": os.nice(0),
        },
        "requests": len(records),
        "errors": len(failed),
        "error_rate": len(failed) / max(1, len(records)),
        "requests_per_s": round(len(records) / max(span, 1.0), 2),
        "endpoints": endpoint_stats(records),
        "search_server_took_ms": took_summary(raw["search_took_ms"]),
        "search_in_django_ms": took_summary(raw.get("search_server_ms", [])),
        "search_end_to_end": e2e_summary(raw.get("search_e2e", [])),
        "search_stages_ms": stages_summary(raw.get("search_stages", [])),
        "error_samples": sorted({f"{r[0]}: {r[5]}" for r in failed})[:20],
        "web_rss": web_memory(samples),
        "web_rss_with_decoders": rss_summary(samples, "web_total"),
        "worker_rss": rss_summary(samples, "worker"),
        "cpu": cpu_summary(samples, len(records)),
        "load_average": f"{facts['load_start']:.1f} / {sum(loads) / len(loads):.1f} / {max(loads):.1f}",
        "backlog_at_end": facts["backlog_at_end"],
        "photos": {
            "acknowledged": len(set(raw["accepted"])),
            "outcomes": raw["outcomes"],
            "upload_jobs": len(raw["jobs"]),
            "final_at_end": facts["final_at_end"],
            "final_after_grace": facts["final_after_grace"],
            "settle_s": facts["settle_s"],
            "indexed_after_grace": states.get("indexed", 0),
            "statuses_after_grace": states,
            "lost": states.get("missing", 0),
        },
        "tracebacks": facts["tracebacks"],
        "rss_samples": samples,
    }
    result["verdicts"] = verdicts(result)
    return result
