"""The measured index operations, through the app's services: rebuild, 100-photo adds, growth, compaction."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.app_scale.rows import Synth, synth_batch

BASE = 10_000  # the small stage every ratio is measured against
ADD_BATCH = 100
GROW_BATCH = 10_000


def photo_count() -> int:
    """Stored photos (originals and copies alike)."""
    from search.models import Photo

    return Photo.objects.count()


def rebuild_all(encoders: list[str]) -> dict[str, float]:
    """index_rebuild for each encoder; seconds per encoder."""
    from search.matching import index

    out = {}
    for encoder in encoders:
        started = time.perf_counter()
        index.index_rebuild(encoder)
        out[encoder] = time.perf_counter() - started
    return out


def add_once(synth: Synth, n: int = ADD_BATCH) -> dict[str, float]:
    """Create n photos + features, then index_add each encoder: {rows_ms, add_ms, ms_per_photo}."""
    from search.matching import index

    started = time.perf_counter()
    ids, vecs = synth_batch(synth, n)
    created, cpu = time.perf_counter(), time.process_time()
    for encoder in synth.encoders:
        index.index_add(encoder, ids, vecs[encoder])
    done = time.perf_counter()
    return {
        # CPU time of this process: the wall time includes fsyncs, which wait on the shared disk.
        "cpu_ms_per_photo": 1000 * (time.process_time() - cpu) / n,
        "rows_ms": 1000 * (created - started),
        "add_ms": 1000 * (done - created),
        "ms_per_photo": 1000 * (done - created) / n,
    }


def add_measure(synth: Synth, repeats: int = 3) -> dict[str, Any]:
    """The median of ``repeats`` 100-photo adds (index_add time per photo, all encoders together)."""
    runs = [add_once(synth) for _ in range(repeats)]
    return {
        "ms_per_photo": statistics.median(r["ms_per_photo"] for r in runs),
        "cpu_ms_per_photo": statistics.median(r["cpu_ms_per_photo"] for r in runs),
        "runs": runs,
    }


def grow_to(synth: Synth, target: int, batch: int = GROW_BATCH) -> list[dict[str, Any]]:
    """Photos up to ``target``: rows then index_add in batches of ``batch`` (each appends a segment)."""
    from search.matching import index

    log = []
    while (have := photo_count()) < target:
        n = min(batch, target - have)
        ids, vecs = synth_batch(synth, n)
        started = time.perf_counter()
        for encoder in synth.encoders:
            index.index_add(encoder, ids, vecs[encoder])
        add_s = time.perf_counter() - started
        log.append({"photos": have + n, "rows": n, "add_s": add_s, "segments": segments_live(synth.encoders)})
        print(f"  grown to {have + n} photos (index_add {add_s:.1f} s)", flush=True)
    return log


def compact_all(encoders: list[str]) -> tuple[float, dict[str, Any]]:
    """index_compact(force=True) per encoder: (total seconds, {encoder: its report and seconds})."""
    from search.matching import index

    total, out = 0.0, {}
    for encoder in encoders:
        started = time.perf_counter()
        report = index.index_compact(encoder, force=True)
        took = time.perf_counter() - started
        total += took
        out[encoder] = {**report, "s": took}
    return total, out


def live_indexes(encoders: list[str]) -> dict[str, Any]:
    """Each encoder's live index, as a search loads it."""
    from search.matching.index import index_for_search

    return {encoder: index_for_search(encoder) for encoder in encoders}


def segments_live(encoders: list[str]) -> dict[str, int]:
    """How many segments each encoder's live index lists."""
    return {e: len(getattr(i, "segments", [])) for e, i in live_indexes(encoders).items() if i is not None}


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def index_bytes(encoders: list[str]) -> dict[str, Any]:
    """Bytes on disk per encoder: the whole folder (kept versions too) and the live version's own files."""
    from django.conf import settings

    from search.matching.live_index import index_store, live_version

    out: dict[str, Any] = {}
    for encoder in encoders:
        store = index_store(encoder)
        live = live_version(encoder)
        info = next((i for i in store.versions() if i.version == live), None)
        own = 0
        if info is not None:
            own = info.path.stat().st_size + sum(
                (store.root / n).stat().st_size for n in store.segment_names(info)
            )
        out[encoder] = {"folder": _tree_bytes(store.root), "live": own}
    out["total_folder"] = _tree_bytes(Path(settings.INDEX_ROOT))
    return out


def memory_bytes(encoders: list[str]) -> dict[str, int]:
    """index.nbytes() of each live index (private memory), their sum, and the mapped segment bytes."""
    loaded = {e: i for e, i in live_indexes(encoders).items() if i is not None}
    out = {e: int(i.nbytes()) for e, i in loaded.items()}
    out["total"] = sum(out.values())
    # The mapped ids and floats: shared page cache, resident only where a search touches them.
    out["mapped"] = sum(
        seg.count * (8 + 4 * seg.config.dim) for i in loaded.values() for _, seg in getattr(i, "segments", [])
    )
    return out


def real_vectors(encoder: str, ids: np.ndarray) -> np.ndarray:
    """Stored (raw, unit) vectors of these photos, in the given order."""
    from search.matching.feature_reads import feature_chunks

    found: dict[int, np.ndarray] = {}
    for got, vecs in feature_chunks(encoder, photo_ids=ids):
        found.update({int(i): v for i, v in zip(got.tolist(), vecs, strict=True)})
    return np.stack([found[int(i)] for i in ids.tolist()])
