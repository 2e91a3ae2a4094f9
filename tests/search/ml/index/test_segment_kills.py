"""A writer appending, tombstoning and compacting segments, SIGKILLed at random, never tears a version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore
from tests.search.ml.index.test_vector import _kill_one_writer, spawn_writers

# Each round forks a writer that continues from the newest version on disk: it appends a batch (some
# replacements) with removals, and every second write compacts (stage, merge, list), as the app does.
# After "wrote V" the version V is complete; its meta holds a digest of exactly the rows it must serve.
_SPAWNER = """
import hashlib, os, sys
from pathlib import Path
import numpy as np
from search.ml.index import IndexConfig, IndexMissing
from search.ml.index.compact import compact_merge, compact_stage
from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore

def digest(index):
    ids = index.ids()
    return hashlib.sha256(ids.tobytes() + index.vectors(ids).tobytes()).hexdigest()

def write_forever(root, seed):
    store, rng = IndexStore(root), np.random.default_rng(seed)
    for i in range(100_000):
        try:
            index = store.load()[0]
        except IndexMissing:
            index = SegmentedIndex(IndexConfig(dim=32, exact_threshold=1500))
        if i % 2 == 1 and index.segments:
            staged = compact_stage(store, index)
            merged, kept = compact_merge(index, staged, store.load()[0])
            meta = {"digest": digest(merged), "reason": "compact"}
            info = store.write_list(merged, kept, [staged], meta, count=len(merged))
        else:
            ids = np.unique(rng.integers(0, 4000, 300))
            x = rng.standard_normal((ids.size, 32)).astype(np.float32)
            index.add(ids, x / np.linalg.norm(x, axis=1, keepdims=True))
            index.remove(rng.integers(0, 4000, 40))
            info = store.write(index, {"digest": digest(index), "reason": "add"})
        os.write(1, f"wrote {info.version}\\n".encode())
        store.prune(keep=2, tmp_max_age_s=0.0)
"""

KILLS = 30


def _digest(index: SegmentedIndex) -> str:
    ids = index.ids()
    return hashlib.sha256(ids.tobytes() + index.vectors(ids).tobytes()).hexdigest()


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_killing_a_segment_writer_30_times_never_loses_or_tears_a_version(tmp_path: Path) -> None:
    spawner = spawn_writers(_SPAWNER, tmp_path)
    rng = np.random.default_rng(1)
    reasons: set[str] = set()
    try:
        for round_ in range(KILLS):
            previous = _kill_one_writer(spawner, round_, float(rng.uniform(0.0, 0.4)))
            store = IndexStore(tmp_path)
            assert all(store.is_valid(v) for v in store.versions()), (
                f"kill {round_}: a listed version is torn"
            )
            index, info = store.load()
            assert isinstance(index, SegmentedIndex)
            assert info.version >= previous, f"kill {round_}: v{previous} was lost"
            # Every row the version promised, and nothing else, is served (also after a compaction).
            assert len(index) == info.count and _digest(index) == info.meta["digest"], f"kill {round_}"
            listed = set().union(*(store.segment_names(v) for v in store.versions()))
            on_disk = {p.name for p in tmp_path.glob("*.seg")}
            assert listed <= on_disk, f"kill {round_}: a listed segment is missing"
            reasons |= {v.meta["reason"] for v in store.versions()}
    finally:
        spawner.kill()
        spawner.wait(timeout=10)
    assert reasons == {"add", "compact"}  # both kinds of write were killed around
