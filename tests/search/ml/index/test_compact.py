"""Compaction: one base holding exactly the live rows, merged with what writers appended meanwhile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search.ml.index import IndexConfig
from search.ml.index.compact import CompactionConflict, compact_due, compact_merge, compact_stage
from search.ml.index.segments import SegmentedIndex
from search.ml.index.store import IndexStore
from tests.search.ml.index.test_segments import DIM, unit


def _loaded(store: IndexStore) -> SegmentedIndex:
    index = store.load()[0]
    assert isinstance(index, SegmentedIndex)
    return index


def _history(tmp_path: Path) -> tuple[IndexStore, dict[int, np.ndarray]]:
    """A base of 60 rows, then three appends, a replacement and removals: the expected live vectors."""
    store = IndexStore(tmp_path)
    expected = dict(zip(range(60), unit(60), strict=True))
    index = SegmentedIndex(IndexConfig(dim=DIM))
    index.add(np.arange(60), unit(60))
    store.write(index)
    for batch in range(3):
        index = _loaded(store)
        ids = np.arange(100 + 10 * batch, 110 + 10 * batch)
        vecs = unit(10, seed=10 + batch)
        index.add(ids, vecs)
        expected.update(zip(ids.tolist(), vecs, strict=True))
        index.add(np.array([batch]), unit(1, seed=50 + batch))  # replace a base row
        expected[batch] = unit(1, seed=50 + batch)[0]
        index.remove(np.array([30 + batch, 101]))
        for gone in (30 + batch, 101):
            expected.pop(gone, None)
        store.write(index)
    return store, expected


def _assert_holds(index: SegmentedIndex, expected: dict[int, np.ndarray]) -> None:
    ids = np.array(sorted(expected))
    assert index.ids().tolist() == ids.tolist() and len(index) == ids.size
    assert np.allclose(index.vectors(ids), np.stack([expected[i] for i in ids]), atol=1e-6)


def test_compaction_folds_every_segment_into_one_base_without_tombstones(tmp_path: Path) -> None:
    store, expected = _history(tmp_path)
    snapshot = _loaded(store)
    assert len(snapshot.segments) == 4 and snapshot.n_tombstones > 0
    staged = compact_stage(store, snapshot)
    merged, kept = compact_merge(snapshot, staged, snapshot)
    store.write_list(merged, kept, [staged], count=len(merged))
    store.prune(keep=1)
    compacted = _loaded(store)
    assert len(compacted.segments) == 1 and compacted.n_tombstones == 0
    _assert_holds(compacted, expected)
    assert len(list(tmp_path.glob("*.seg"))) == 1  # the folded segments were collected


def test_writes_during_a_compaction_survive_it(tmp_path: Path) -> None:
    store, expected = _history(tmp_path)
    snapshot = _loaded(store)
    staged = compact_stage(store, snapshot)  # the long part: writers are not locked out
    during = _loaded(store)
    during.add(np.array([500, 501]), unit(2, seed=77))  # a new upload
    expected.update(zip([500, 501], unit(2, seed=77), strict=True))
    during.remove(np.array([40, 105]))  # 40 is in the base being staged, 105 in a folded delta
    expected.pop(40), expected.pop(105)
    during.add(np.array([41]), unit(1, seed=78))  # a replacement of a row the staged base holds
    expected[41] = unit(1, seed=78)[0]
    store.write(during)

    current = _loaded(store)
    merged, kept = compact_merge(snapshot, staged, current)
    store.write_list(merged, kept, [staged], count=len(merged))
    _assert_holds(_loaded(store), expected)


def test_a_compaction_whose_snapshot_was_replaced_is_refused(tmp_path: Path) -> None:
    store, _ = _history(tmp_path)
    snapshot = _loaded(store)
    staged = compact_stage(store, snapshot)
    rebuilt = SegmentedIndex(IndexConfig(dim=DIM))  # e.g. a rebuild from the database won the race
    rebuilt.add(np.arange(5), unit(5))
    store.write(rebuilt)
    with pytest.raises(CompactionConflict):
        compact_merge(snapshot, staged, _loaded(store))
    staged[0].unlink()


def test_compaction_is_due_on_deltas_tombstones_or_segment_count(tmp_path: Path) -> None:
    store, _ = _history(tmp_path)
    index = _loaded(store)  # base 60 rows, 30 delta rows, 4 segments, some tombstones
    assert not compact_due(index, min_rows=100, fraction=0.5, max_segments=10)
    assert compact_due(index, min_rows=20, fraction=0.1, max_segments=10)  # 30 delta rows > 20
    assert compact_due(index, min_rows=100, fraction=0.5, max_segments=3)
    assert compact_due(index, min_rows=index.n_tombstones - 1, fraction=0.0, max_segments=10)


def test_the_version_before_a_compaction_stays_loadable_while_it_is_kept(tmp_path: Path) -> None:
    store, expected = _history(tmp_path)
    snapshot = _loaded(store)
    staged = compact_stage(store, snapshot)
    merged, kept = compact_merge(snapshot, staged, snapshot)
    store.write_list(merged, kept, [staged], count=len(merged))
    store.prune(keep=2)  # a web process may still be serving the previous version: its segments stay
    before, after = store.versions()
    assert store.is_valid(before) and store.is_valid(after)
    previous = store.load(before.version)[0]
    assert isinstance(previous, SegmentedIndex)
    _assert_holds(previous, expected)
