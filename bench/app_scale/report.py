"""The bench's arithmetic and its table: percentiles, recall, per-100k growth, targets (no Django)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# name: (result key path, target, "<=" or ">=")
TARGETS: dict[str, tuple[tuple[str, ...], float, str]] = {
    "search_p95_ms": (("search_p95_ms",), 300.0, "<="),
    "add_cost_ratio_100k_vs_10k": (("add_cost_ratio_100k_vs_10k",), 1.5, "<="),
    "web_rss_mb_per_100k": (("web_rss_mb_per_100k",), 400.0, "<="),
    "recall_at_10": (("recall_at_10",), 0.95, ">="),
    "edited_found_share": (("edited_found", "share"), 1.0, ">="),
}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) as bench.load reports it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary(ms: Sequence[float]) -> dict[str, float | int | None]:
    """{n, p50_ms, p95_ms, mean_ms} of per-query milliseconds."""
    mean = float(np.mean(ms)) if len(ms) else None
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "mean_ms": mean}


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found top-k ∩ true top-k| / k ((Q, >=k) id arrays; -1 pads count as misses)."""
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"{found.shape[0]} result rows for {truth.shape[0]} queries")
    hits = [
        len({int(i) for i in f[:k] if i >= 0} & {int(t) for t in g[:k] if t >= 0})
        for f, g in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits) / k) if hits else 0.0


def growth_per_100k(at_n: float | None, at_base: float | None, n: int, base: int) -> float | None:
    """(at_n - at_base) per 100 000 photos added from base to n; None if n <= base or a value is missing."""
    if at_n is None or at_base is None or n <= base:
        return None
    return (at_n - at_base) / ((n - base) / 100_000)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    return None if a is None or not b else a / b


def _lookup(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: {target, value, met}}; met is None when the run could not measure the value."""
    out: dict[str, dict[str, Any]] = {}
    for name, (path, goal, sense) in TARGETS.items():
        value = _lookup(result, path)
        met = None if value is None else (value <= goal if sense == "<=" else value >= goal)
        out[name] = {"target": f"{sense} {goal:g}", "value": value, "met": met}
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    """The printed summary: headline numbers, peers, then targets."""
    found = result.get("edited_found") or {}
    rows = [
        ("photos (real)", f"{result.get('photos')} ({result.get('real_photos')})"),
        ("search p50 / p95 ms", f"{_fmt(result.get('search_p50_ms'))} / {_fmt(result.get('search_p95_ms'))}"),
        ("edited found", f"{found.get('found')}/{found.get('total')}"),
        ("recall@10 (live index vs exact)", _fmt(result.get("recall_at_10"))),
        (
            "add ms/photo 10k / N",
            " / ".join(_fmt(v) for v in (result.get("add_batch_ms_per_photo") or {}).values()),
        ),
        ("add cost ratio N vs 10k", _fmt(result.get("add_cost_ratio_100k_vs_10k"))),
        ("web RSS MB 10k / N", " / ".join(_fmt(v) for v in (result.get("web_rss_mb") or {}).values())),
        ("web RSS MB per 100k", _fmt(result.get("web_rss_mb_per_100k"))),
        (
            "build s / bulk rows s / compaction s",
            " / ".join(_fmt(result.get(k)) for k in ("build_s", "bulk_rows_s", "compaction_s")),
        ),
        (
            "bytes/photo disk / memory",
            f"{_fmt(result.get('bytes_per_photo_disk'))} / {_fmt(result.get('bytes_per_photo_memory'))}",
        ),
        ("wall s", _fmt(result.get("wall_s"))),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    lines.append(f"{'peer':<28} {'rows':>8} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9}")
    for name, peer in (result.get("peers") or {}).items():
        if isinstance(peer, dict) and "p50_ms" in peer:
            lines.append(
                f"{name:<28} {peer.get('rows', ''):>8} {_fmt(peer.get('p50_ms')):>8} "
                f"{_fmt(peer.get('p95_ms')):>8} {_fmt(peer.get('recall_at_10')):>9}"
            )
        else:
            lines.append(f"{name:<28} {peer}")
    lines.append("")
    for name, t in (result.get("targets") or {}).items():
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"target {name} {t['target']}: {_fmt(t['value'])} ({verdict})")
    return "\n".join(lines)
