"""One web process (as bench.load starts it) searched over HTTP with edited copies of the real photos."""

from __future__ import annotations

import io
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from search.ml.images.edits import BENCH_EDITS, apply_edit

PASSWORD = "app-scale-pass-5191"


@dataclass(frozen=True)
class Query:
    """An edited copy of one stored real photo: its source id, the ids that count as finding it, the bytes."""

    source: int
    accepted: frozenset[int]
    kind: str
    name: str
    data: bytes


def searcher_create() -> dict[str, str]:
    """A realtor account the web process logs in (token auth)."""
    from flatsite.core import accounts

    accounts.roles_setup()
    user = accounts.user_create(username="bench-app-scale", password=PASSWORD, role="realtor")
    return {"username": user.get_username(), "password": PASSWORD}


def _copies_of(source: int) -> frozenset[int]:
    """The source and the photos the app recorded as its copies (duplicates, exact/edited matches)."""
    from django.db.models import Q

    from search.models import Photo, PhotoMatch

    ids = {source, *Photo.objects.filter(duplicate_of_id=source).values_list("pk", flat=True)}
    pairs = PhotoMatch.objects.filter(level__in=["exact", "edited"]).filter(
        Q(photo_a=source) | Q(photo_b=source)
    )
    for a, b in pairs.values_list("photo_a", "photo_b"):
        ids |= {a, b}
    return frozenset(ids)


def queries_make(houses: Path, count: int, seed: int) -> list[Query]:
    """``count`` edited copies (BENCH_EDITS kinds in turn) of seeded real stored photos, as PNG bytes."""
    from search.models import Photo

    real = list(
        Photo.objects.filter(duplicate_of__isnull=True, status=Photo.Status.INDEXED)
        .exclude(original_name__startswith="synthetic_")
        .values_list("pk", "original_name")
    )
    rng = random.Random(seed)
    kinds = list(BENCH_EDITS)
    out = []
    for i in range(count):
        pk, name = real[rng.randrange(len(real))] if count > len(real) else real[i * len(real) // count]
        kind = kinds[i % len(kinds)]
        with Image.open(houses / name) as img:
            edited = apply_edit(img, kind, random.Random(f"{seed}-{i}"), BENCH_EDITS)
        buf = io.BytesIO()
        edited.save(buf, format="PNG")  # lossless, as bench.edited_copies.near_duplicates_app saves them
        out.append(Query(pk, _copies_of(pk), kind, f"q{i}_{kind}.png", buf.getvalue()))
    return out


def web_start(data_dir: Path, logs: Path) -> Any:
    """The web process (python -m flatsite.web) on this data folder and database; redis is not needed."""
    from tests import processes

    env = processes.service_env(
        redis_url="redis://127.0.0.1:1/0", data_dir=data_dir, CHANNEL_BACKEND="memory"
    )
    return processes.daphne_server(env, logs)


def token_get(url: str, account: dict[str, str]) -> str:
    """The account's API token."""
    import requests

    resp = requests.post(f"{url}/api/token/", data=account, timeout=120)
    resp.raise_for_status()
    return str(resp.json()["token"])


def search_one(url: str, token: str, query: Query) -> tuple[float, dict[str, Any]]:
    """POST /api/search/: (end-to-end ms, response JSON)."""
    import requests

    started = time.perf_counter()
    resp = requests.post(
        f"{url}/api/search/",
        files={"photo": (query.name, query.data, "image/png")},
        headers={"Authorization": f"Token {token}"},
        timeout=300,
    )
    took = 1000 * (time.perf_counter() - started)
    resp.raise_for_status()
    return took, resp.json()


def found_edited(query: Query, answer: dict[str, Any]) -> str | None:
    """The level at which the source (or a recorded copy) was found among exact/edited matches, else None."""
    for match in answer.get("matches", []):
        if match["photo_id"] in query.accepted and match["level"] in ("edited", "exact"):
            return str(match["level"])
    return None


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of one process in MB (VmRSS, or RssAnon / RssFile, of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def rss_tree_mb(service: Any) -> dict[str, float]:
    """The web process's RSS and with its children (decoder processes)."""
    main = rss_mb(service.proc.pid)
    total = main
    for child in service.children():
        try:
            total += rss_mb(child)
        except (OSError, RuntimeError):
            continue
    # RssFile holds the touched pages of the mapped segments (page cache, shared); RssAnon is private.
    pid = service.proc.pid
    return {
        "main": main,
        "with_children": total,
        "anon": rss_mb(pid, "RssAnon"),
        "file": rss_mb(pid, "RssFile"),
    }


def search_session(
    data_dir: Path, logs: Path, account: dict[str, str], queries: list[Query], warm: int
) -> dict[str, Any]:
    """Start web, warm up with ``warm`` queries, read RSS, run the queries, read RSS again, stop it."""
    web = web_start(data_dir, logs)
    try:
        url = web.extra["url"]
        token = token_get(url, account)
        for query in queries[:warm]:
            search_one(url, token, query)
        rss_warm = rss_tree_mb(web)
        load_start = os.getloadavg()[0]
        ms, levels, timings = [], [], []
        for query in queries:
            took, answer = search_one(url, token, query)
            ms.append(took)
            levels.append(found_edited(query, answer))
            timings.append({"took_ms": answer.get("took_ms"), **(answer.get("timings") or {})})
        rss_end = rss_tree_mb(web) if queries else rss_warm
        errors = web.log().count("Traceback (most recent call last)")
    finally:
        web.stop(graceful=True)
    misses = [
        {"source": q.source, "kind": q.kind} for q, lvl in zip(queries, levels, strict=True) if lvl is None
    ]
    return {
        "load1": [load_start, os.getloadavg()[0]],  # the machine is shared: its load during the searches
        "ms": ms,
        "levels": levels,
        "misses": misses,
        "timings": timings,
        "rss_warm": rss_warm,
        "rss_end": rss_end,
        "tracebacks": errors,
    }
