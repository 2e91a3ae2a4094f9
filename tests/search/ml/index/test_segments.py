"""Segments: immutable mapped files, tombstones, appends that cost the batch, damage and collection."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.ml.index import IndexConfig, IndexCorrupt
from search.ml.index.segment import Segment, SegmentWriter, segment_write
from search.ml.index.segments import SegmentedIndex, list_parse
from search.ml.index.store import IndexStore

DIM = 16


def unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _segment(tmp_path: Path, n: int, config: IndexConfig, chunk: int = 97) -> tuple[Segment, np.ndarray]:
    x = unit(n)
    ids = np.arange(10, 10 + 2 * n, 2, dtype=np.int64)
    chunks = [(ids[lo : lo + chunk], x[lo : lo + chunk]) for lo in range(0, n, chunk)]
    segment_write(tmp_path / "a.seg", chunks, n, config)
    return Segment(tmp_path / "a.seg"), x


def _store_with(tmp_path: Path, n: int, config: IndexConfig | None = None) -> IndexStore:
    store = IndexStore(tmp_path)
    index = SegmentedIndex(config or IndexConfig(dim=DIM))
    index.add(np.arange(n, dtype=np.int64), unit(n))
    store.write(index)
    return store


def _loaded(store: IndexStore) -> SegmentedIndex:
    index = store.load()[0]
    assert isinstance(index, SegmentedIndex)
    return index


def test_a_segment_maps_its_rows_read_only_and_its_exact_scan_equals_brute_force(tmp_path: Path) -> None:
    seg, x = _segment(tmp_path, 500, IndexConfig(dim=DIM))
    assert isinstance(seg.vecs, np.memmap) and isinstance(seg.ids, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        seg.vecs[0, 0] = 1.0  # every process shares the page cache copy: nobody may write it
    q = unit(3, seed=1)
    scores, rows = seg.search(q, 5, np.empty(0, np.int64))
    expected = np.argsort(-(x @ q.T), axis=0)[:5].T  # (3, 5)
    assert (rows == expected).all()
    assert np.allclose(scores, np.take_along_axis((x @ q.T).T, expected, 1), atol=1e-5)


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) unit vectors around 40 centres, like photos of a few hundred look-alike rooms."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    x = centres[rng.integers(0, 40, n)] + rng.standard_normal((n, dim)).astype(np.float32) * 0.6
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_large_segment_gets_a_compact_shortlist_with_high_recall(tmp_path: Path) -> None:
    config = IndexConfig(dim=64, exact_threshold=1000)
    x = _clustered(4000, 64, seed=0)
    ids = np.arange(4000, dtype=np.int64)
    segment_write(
        tmp_path / "big.seg",
        [(ids[lo : lo + 1000], x[lo : lo + 1000]) for lo in range(0, 4000, 1000)],
        4000,
        config,
    )
    seg = Segment(tmp_path / "big.seg")
    assert seg.ann is not None
    assert seg.nbytes_resident() < x.nbytes / 2  # codes, not floats, stay in the process
    q = _clustered(50, 64, seed=2)
    _, rows = seg.search(q, 10, np.empty(0, np.int64))
    exact = np.argsort(-(x @ q.T), axis=0)[:10].T
    recall = np.mean([len(set(r) & set(e)) / 10 for r, e in zip(rows, exact, strict=True)])
    assert recall >= 0.95


def test_the_shortlist_never_returns_a_dead_row(tmp_path: Path) -> None:
    config = IndexConfig(dim=DIM, exact_threshold=1000)
    seg, x = _segment(tmp_path, 3000, config, chunk=1000)
    q = x[:5]  # each query's best row is itself
    dead = np.arange(5, dtype=np.int64)
    _, rows = seg.search(q, 10, dead)
    assert not np.isin(rows, dead).any()


def test_a_writer_refuses_unsorted_ids_and_an_aborted_one_leaves_no_file(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path / "b.seg", 4, IndexConfig(dim=DIM))
    writer.write(np.array([1, 2]), unit(2))
    with pytest.raises(ValueError, match="ascending"):
        writer.write(np.array([2, 3]), unit(2))
    writer.abort()
    assert not (tmp_path / "b.seg").exists()
    with pytest.raises(RuntimeError):
        segment_write(tmp_path / "c.seg", _boom(), 4, IndexConfig(dim=DIM))
    assert not (tmp_path / "c.seg").exists()


def _boom():  # type: ignore[no-untyped-def]
    yield np.array([1]), unit(1)
    raise RuntimeError("database went away mid-stream")


def test_adding_writes_one_segment_of_the_batch_whatever_the_collection_size(tmp_path: Path) -> None:
    written = []
    for n in (1_000, 20_000):
        store = _store_with(tmp_path / str(n), n)
        before = {p.name: p.stat().st_size for p in store.root.iterdir()}
        index = _loaded(store)
        index.add(np.arange(10**6, 10**6 + 100), unit(100, seed=3))
        store.write(index)
        new = {p.name: p.stat().st_size for p in store.root.iterdir() if p.name not in before}
        assert sum(1 for name in new if name.endswith(".seg")) == 1
        written.append(sum(new.values()))
    # Bytes the add writes do not depend on the 1k vs 20k rows (only the digits of counts in the headers).
    assert abs(written[0] - written[1]) <= 64 and written[1] < 20_000 * DIM * 4 / 10


def test_replacing_an_id_tombstones_its_old_row_and_serves_the_new_vector(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 50)
    index = _loaded(store)
    new = unit(1, seed=9)
    index.add(np.array([7]), new)
    store.write(index)
    index = _loaded(store)
    assert len(index) == 50 and index.n_tombstones == 1
    assert np.allclose(index.vectors(np.array([7])), new, atol=1e-6)
    _, found = index.search(new, 2)
    assert found[0, 0] == 7 and found[0, 1] != 7  # the old row of 7 is not a second hit


def test_removed_ids_are_never_returned_and_a_later_re_add_is_live_again(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 30)
    x = unit(30)
    index = _loaded(store)
    assert index.remove(np.array([3, 4, 999])) == 2
    store.write(index)
    index = _loaded(store)
    _, found = index.search(x[3:5], 30)
    assert not np.isin(found, [3, 4]).any() and len(index) == 28
    index.add(np.array([3]), x[3:4])  # a newer segment: the tombstone (seq <= its own) does not reach it
    store.write(index)
    index = _loaded(store)
    _, found = index.search(x[3:4], 1)
    assert found[0, 0] == 3 and 4 not in index and len(index) == 29


def test_a_damaged_segment_makes_its_versions_invalid_even_for_a_fresh_store_object(tmp_path: Path) -> None:
    _store_with(tmp_path, 40)
    seg = next(p for p in tmp_path.iterdir() if p.suffix == ".seg")
    data = bytearray(seg.read_bytes())
    data[-5] ^= 0xFF
    seg.write_bytes(bytes(data))
    fresh = IndexStore(tmp_path)  # no cached checksums: the list verifies, its segment must not
    assert not fresh.is_valid(fresh.versions()[-1])
    with pytest.raises(IndexCorrupt):
        fresh.load()


def test_prune_deletes_segments_no_kept_version_lists_and_keeps_shared_ones(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 20)
    base = {p.name for p in tmp_path.iterdir() if p.suffix == ".seg"}
    for batch in range(3):
        index = _loaded(store)
        index.add(np.array([1000 + batch]), unit(1, seed=batch))
        store.write(index)
    segments = {p.name for p in tmp_path.iterdir() if p.suffix == ".seg"}
    assert len(segments) == 4
    store.prune(keep=1)
    left = {p.name for p in tmp_path.iterdir() if p.suffix == ".seg"}
    assert left == segments  # the one kept version lists all four (base + three appends)
    (tmp_path / "sdeadbeefdeadbeef.seg").write_bytes(b"orphan")  # e.g. from a killed compaction
    store.prune(keep=1)
    assert base <= {p.name for p in tmp_path.iterdir()} and not (tmp_path / "sdeadbeefdeadbeef.seg").exists()
    assert len(_loaded(store)) == 23


def test_a_segment_list_with_garbage_is_refused() -> None:
    index = SegmentedIndex(IndexConfig(dim=DIM))
    index.tomb_ids, index.tomb_seqs = np.array([1, 2]), np.array([1, 1])
    data = index.list_bytes([])
    assert list_parse(data)[2].tolist() == [1, 2]
    for bad in (b"nonsense" + data[8:], data[:-3], data[:20]):
        with pytest.raises(IndexCorrupt):
            list_parse(bad)


def test_segments_with_another_centre_cannot_be_listed_together(tmp_path: Path) -> None:
    seg, _ = _segment(tmp_path, 10, IndexConfig(dim=DIM))
    from search.ml.index.segment import SegmentMeta

    meta = SegmentMeta("a.seg", 1, 10, 0, "")
    centred = IndexConfig(dim=DIM, centre=tuple([0.1] * DIM), centre_count=10)
    with pytest.raises(IndexCorrupt, match="centre"):
        SegmentedIndex(centred, [(meta, seg)])


def test_a_shortlisted_segment_drops_its_mapped_pages_as_it_re_scores(tmp_path: Path) -> None:
    config = IndexConfig(dim=64, exact_threshold=1000)
    x = _clustered(3000, 64, seed=4)
    ids = np.arange(3000, dtype=np.int64)
    segment_write(tmp_path / "s.seg", [(ids, x)], 3000, config)
    seg = Segment(tmp_path / "s.seg")
    picks = np.array([3, 4, 5, 900, 2999])
    assert np.array_equal(seg.rows(picks), x[picks])
    dropped: list[int] = []
    seg._map = _CountingMap(seg._map, dropped)  # type: ignore[assignment]
    for _ in range(3):
        _, rows = seg.search(x[:3], 5, np.empty(0, np.int64))  # 3 queries x up to 512 re-scored rows
        assert rows[:, 0].tolist() == [0, 1, 2]
    assert dropped and set(dropped) == {mmap.MADV_DONTNEED}


class _CountingMap:
    """Stands in for the segment's mmap: records madvise calls and passes them on."""

    def __init__(self, real: Any, calls: list[int]) -> None:
        self.real, self.calls = real, calls

    def madvise(self, option: int) -> None:
        self.calls.append(option)
        self.real.madvise(option)


def test_checksum_results_of_pruned_segments_are_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.ml.index.segment as segment_module
    from search.ml.index.segment import SegmentMeta, segment_valid

    monkeypatch.setattr(segment_module, "_verified", {})
    monkeypatch.setattr(segment_module, "_VERIFIED_MAX", 3)
    config = IndexConfig(dim=DIM)
    paths = []
    for n in range(6):  # a long-lived worker verifies every new segment; prune deletes the old ones
        path = tmp_path / f"s{n}.seg"
        size, sha, _ = segment_write(path, [(np.array([n]), unit(1, seed=n))], 1, config)
        assert segment_valid(path, SegmentMeta(path.name, n, 1, size, sha))
        paths.append(path)
        if n >= 1:
            paths[n - 1].unlink()
    remembered = {key[0] for key in segment_module._verified}
    assert len(remembered) <= 3 and str(paths[-1]) in remembered
    assert not remembered & {str(p) for p in paths[:-2]}
