"""Vector index core: search semantics, crash-safe versioned store, lock, reconcile."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from search.ml.index import (
    IndexConfig,
    IndexCorrupt,
    IndexLocked,
    IndexMissing,
    VectorIndex,
    build_index,
    plan_reconcile,
    reconcile,
)
from search.ml.index.store import IndexStore, LiveIndex

REPO_ROOT = Path(__file__).resolve().parents[3]
DIM = 16
KINDS = ["flat", "hnsw"]


def unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make(kind: str, n: int = 200, seed: int = 0, **cfg: object) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    ids = np.arange(100, 100 + n, dtype=np.int64)
    x = unit(n, seed=seed)
    index = VectorIndex(IndexConfig(dim=DIM, **cfg), kind)  # type: ignore[arg-type]
    index.add(ids, x)
    return index, ids, x


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


# ---- search semantics ---------------------------------------------------------------------------
def test_exact_search_equals_numpy_brute_force() -> None:
    index, ids, x = make("flat", n=500)
    q = unit(25, seed=1)
    scores, got = index.search(q, 10)
    sims = q @ x.T  # (25, 500)
    order = np.argsort(-sims, axis=1)[:, :10]
    np.testing.assert_array_equal(got, ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(sims, order, axis=1), atol=1e-5)
    assert scores.dtype == np.float32 and got.dtype == np.int64


def test_build_index_picks_flat_below_threshold_and_hnsw_at_or_above() -> None:
    x = unit(50)
    assert build_index(np.arange(50), x, IndexConfig(dim=DIM, exact_threshold=51)).kind == "flat"
    assert build_index(np.arange(50), x, IndexConfig(dim=DIM, exact_threshold=50)).kind == "hnsw"


def test_hnsw_recall_at_10_is_high_on_small_data() -> None:
    exact, _, x = make("flat", n=1000)
    approx = VectorIndex(exact.config, "hnsw")
    approx.add(exact.ids(), x)
    q = unit(50, seed=3)
    _, truth = exact.search(q, 10)
    _, got = approx.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got, strict=True)])
    assert recall > 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_re_adding_an_id_replaces_its_vector(kind: str) -> None:
    index, ids, x = make(kind)
    index.add(ids[:1], x[5:6])
    assert len(index) == 200
    np.testing.assert_allclose(index.vectors(ids[:1]), x[5:6])
    scores, got = index.search(x[5:6], 200)
    assert got[0].tolist().count(ids[0]) == 1  # the old copy is gone, not shadowed
    assert set(got[0][scores[0] > 0.999]) == {ids[0], ids[5]}
    assert index.search(x[:1], 1)[0][0, 0] < 0.999  # the old vector no longer matches anything


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_ids_in_one_batch_keep_the_last_vector(kind: str) -> None:
    index = VectorIndex(IndexConfig(dim=DIM), kind)
    x = unit(3)
    index.add(np.array([7, 7, 8]), x)
    assert index.ids().tolist() == [7, 8]
    np.testing.assert_allclose(index.vectors(np.array([7])), x[1:2])


@pytest.mark.parametrize("kind", KINDS)
def test_remove_counts_only_live_ids(kind: str) -> None:
    index, ids, _ = make(kind)
    assert index.remove(np.array([ids[0], ids[0], ids[1], 99999])) == 2
    assert index.remove(np.array([ids[0]])) == 0
    assert len(index) == 198 and ids[0] not in index and ids[2] in index
    assert index.remove(np.array([], dtype=np.int64)) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ids_are_never_returned_even_when_k_exceeds_live_count(kind: str) -> None:
    index, ids, x = make(kind, tombstone_rebuild_fraction=0.9)
    gone = ids[::3]
    index.remove(gone)
    if kind == "hnsw":
        assert index.n_tombstones == gone.size  # filtered, not yet rebuilt
    scores, got = index.search(x, 250)  # queries include the removed vectors themselves
    assert not np.isin(got, gone).any()
    live = got[got >= 0]
    assert set(live) <= set(index.ids())
    assert (got[:, : len(index) - 5] >= 0).all()  # still (nearly) full rows of live results
    assert np.isneginf(scores[got < 0]).all()


def test_hnsw_rebuilds_once_tombstones_exceed_the_fraction() -> None:
    index, ids, x = make("hnsw", tombstone_rebuild_fraction=0.25)
    index.remove(ids[:40])
    assert index.n_tombstones == 40
    index.remove(ids[40:60])
    assert index.n_tombstones == 0 and len(index) == 140 and index.kind == "hnsw"
    _, got = index.search(x[60:61], 1)
    assert got[0, 0] == ids[60]


def test_search_pads_short_results_and_handles_empty_index() -> None:
    index, _, x = make("flat", n=3)
    scores, got = index.search(x[:2], 5)
    assert got.shape == (2, 5) and (got[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    empty = VectorIndex(IndexConfig(dim=DIM), "hnsw")
    scores, got = empty.search(x[:2], 4)
    assert (got == -1).all() and got.shape == (2, 4)
    assert 5 not in empty and len(empty) == 0 and empty.ids().size == 0


def test_add_rejects_bad_input() -> None:
    index = VectorIndex(IndexConfig(dim=DIM))
    with pytest.raises(ValueError, match="normalised"):
        index.add(np.array([1]), unit(1) * 2)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([1]), unit(1, dim=DIM + 1))
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-1]), unit(1))
    with pytest.raises(ValueError, match="ids but"):
        index.add(np.array([1, 2]), unit(1))
    with pytest.raises(ValueError, match="k must"):
        index.search(unit(1), 0)


def test_needs_rebuild_and_rebuild_switch_kind_by_size() -> None:
    index, _, _ = make("flat", n=60, exact_threshold=50)
    assert index.needs_rebuild
    index.rebuild()
    assert index.kind == "hnsw" and not index.needs_rebuild and len(index) == 60
    index.remove(index.ids()[:40])
    assert index.needs_rebuild  # 20 < 50 // 2
    index.rebuild()
    assert index.kind == "flat"


# ---- store ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_store_round_trip_preserves_ids_vectors_and_results(kind: str, tmp_path: Path) -> None:
    index, ids, x = make(kind, tombstone_rebuild_fraction=0.9)
    index.remove(ids[:10])  # hnsw: tombstones must survive the round trip
    store = IndexStore(tmp_path)
    info = store.write(index, meta={"encoder": "effnet-lite0"})
    loaded, linfo = store.load()
    assert linfo == info and linfo.meta == {"encoder": "effnet-lite0"}
    assert loaded.kind == kind and loaded.config == index.config
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    assert loaded.n_tombstones == index.n_tombstones
    for a, b in zip(index.search(x, 7), loaded.search(x, 7), strict=True):
        np.testing.assert_array_equal(a, b)


def test_versions_increase_and_latest_version_reads_the_listing(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    assert store.latest_version() is None and store.versions() == []
    index, _, _ = make("flat", n=10)
    for expected in (1, 2, 3):
        assert store.write(index).version == expected
    assert store.latest_version() == 3
    assert [v.version for v in store.versions()] == [1, 2, 3]
    assert store.load(2)[1].version == 2


def test_empty_store_raises_index_missing(tmp_path: Path) -> None:
    with pytest.raises(IndexMissing):
        IndexStore(tmp_path).load()


def _two_versions(tmp_path: Path) -> tuple[IndexStore, VectorIndex]:
    store = IndexStore(tmp_path)
    store.write(make("flat", n=20)[0])
    newer, _, _ = make("flat", n=30)
    store.write(newer)
    return store, newer


@pytest.mark.parametrize("failing_call", [1, 2])
def test_crash_during_rename_keeps_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    store, newer = _two_versions(tmp_path)
    real_replace, calls = os.replace, []

    def flaky_replace(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == failing_call:  # 1: index file rename, 2: manifest rename
            raise OSError("simulated crash")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="simulated"):
        store.write(make("flat", n=40)[0])
    monkeypatch.undo()
    loaded, info = store.load()
    assert info.version == 2 and len(loaded) == 30 and store.latest_version() == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "v00000001.idx",
        "v00000001.json",
        "v00000002.idx",
        "v00000002.json",
    ]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert store.write(newer).version == 3


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "bad_manifest", "delete_index"])
def test_damaged_newest_version_falls_back_to_previous(tmp_path: Path, damage: str) -> None:
    store, _ = _two_versions(tmp_path)
    idx, manifest = tmp_path / "v00000002.idx", tmp_path / "v00000002.json"
    if damage == "truncate":
        os.truncate(idx, idx.stat().st_size // 2)
    elif damage == "flip_byte":
        data = bytearray(idx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        idx.write_bytes(bytes(data))
    elif damage == "bad_manifest":
        manifest.write_text('{"version": 2, "kind"')
    else:
        idx.unlink()
    loaded, info = store.load()
    assert info.version == 1 and len(loaded) == 20
    with pytest.raises(IndexCorrupt):
        store.load(2)


def test_all_versions_damaged_raises_index_corrupt(tmp_path: Path) -> None:
    store, _ = _two_versions(tmp_path)
    for idx in tmp_path.glob("v*.idx"):
        idx.write_bytes(idx.read_bytes()[:-1] + b"\0")
    with pytest.raises(IndexCorrupt) as info:
        store.load()
    assert not isinstance(info.value, IndexMissing)


def test_loader_rejects_garbage_even_with_a_matching_checksum() -> None:
    import io

    with pytest.raises(IndexCorrupt):
        VectorIndex.load_from(io.BytesIO(b"FSVIDX01" + b"\x05" + b"\0" * 7 + b"{bad}"))
    with pytest.raises(IndexCorrupt):
        VectorIndex.load_from(io.BytesIO(b"not an index"))


def test_prune_keeps_newest_valid_versions_and_drops_damage(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    index = make("flat", n=10)[0]
    for _ in range(5):
        store.write(index)
    (tmp_path / "v00000005.idx").write_bytes(b"junk")  # damaged newest
    (tmp_path / "v00000009.idx").write_bytes(b"orphan")  # crash between index and manifest rename
    (tmp_path / ".v-1-dead.idx.tmp").write_bytes(b"partial")
    deleted = store.prune(keep=2, tmp_max_age_s=0.0, protect=[1])  # e.g. a version the database pins
    assert deleted == [2, 5, 9]
    assert [v.version for v in store.versions()] == [1, 3, 4]
    assert not list(tmp_path.glob(".*.tmp"))
    assert store.load()[1].version == 4


def test_lock_refuses_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    with store.lock(), pytest.raises(IndexLocked), IndexStore(tmp_path).lock():
        pass
    with store.lock():  # released on exit
        pass


def test_lock_refuses_while_another_process_holds_it(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from search.ml.index.store import IndexStore\n"
        "with IndexStore(Path(sys.argv[1])).lock():\n    print('locked', flush=True); sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLocked, match=str(child.pid)), IndexStore(tmp_path).lock():
            pass
    finally:
        child.kill()  # a killed holder releases the lock too
        child.wait(timeout=10)
    with IndexStore(tmp_path).lock():
        pass


# Imports once, then forks one writer per round, so 50 kills cost 50 forks, not 50 interpreter starts.
# The writer reports each version number once write() has returned (the version is then complete).
_SPAWNER = """
import os, sys
from pathlib import Path
import numpy as np
from search.ml.index import IndexConfig, build_index
from search.ml.index.store import IndexStore

def write_forever(root, seed):
    store, rng = IndexStore(root), np.random.default_rng(seed)
    for i in range(100_000):
        n = 3000 + int(rng.integers(500))  # the count lets the parent check it loaded a whole version
        x = rng.standard_normal((n, 64)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        info = store.write(build_index(np.arange(n), x, IndexConfig(dim=64)), {"n": n})
        # One write() per line: print() makes one per piece when PYTHONUNBUFFERED is set, and a kill
        # between "wrote" and the number left the parent reading "wrotereaped".
        os.write(1, f"wrote {info.version}\\n".encode())
        store.prune(keep=2, tmp_max_age_s=0.0)  # as index_add does; killed mid-prune too
"""
# The spawner's loop (after a write_forever(root, seed) of its own): one forked writer per line of stdin.
FORK_LOOP = """
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        write_forever(Path(sys.argv[1]), int(line))
        os._exit(0)
    print("child", pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""

KILLS = 50


def spawn_writers(writer_source: str, root: Path) -> subprocess.Popen[str]:
    """The forking spawner of a kill test: ``writer_source`` defines write_forever(root, seed)."""
    return subprocess.Popen(
        [sys.executable, "-c", writer_source + FORK_LOOP, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
        text=True,
    )


def _kill_one_writer(spawner: subprocess.Popen[str], seed: int, delay_s: float) -> int:
    """Fork a writer, SIGKILL it delay_s after its first complete version; the last version it reported."""
    assert spawner.stdin is not None and spawner.stdout is not None
    spawner.stdin.write(f"{seed}\n")
    spawner.stdin.flush()
    tag, pid = spawner.stdout.readline().split()
    assert tag == "child"
    first = spawner.stdout.readline().split()
    assert first[0] == "wrote", first
    time.sleep(delay_s)
    os.kill(int(pid), signal.SIGKILL)
    reported = int(first[1])
    for line in iter(spawner.stdout.readline, "reaped\n"):
        assert line.startswith("wrote"), line
        reported = int(line.split()[1])
    return reported


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_killing_the_writer_50_times_always_leaves_the_previous_version_loadable(tmp_path: Path) -> None:
    spawner = spawn_writers(_SPAWNER, tmp_path)
    rng = np.random.default_rng(0)
    mid_write = 0
    try:
        for round_ in range(KILLS):
            previous = _kill_one_writer(spawner, round_, float(rng.uniform(0.0, 0.15)))
            mid_write += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
            store = IndexStore(tmp_path)
            assert all(store.is_valid(v) for v in store.versions()), (
                f"kill {round_}: a listed version is torn"
            )
            index, info = store.load()
            # The version completed before the kill (or a newer complete one) loads, whole.
            assert info.version >= previous, f"kill {round_}: v{previous} was lost"
            assert len(index) == info.count == info.meta["n"]
    finally:
        spawner.kill()
        spawner.wait(timeout=10)
    print(f"{KILLS} kills, {mid_write} left an unfinished temp file behind")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_index_reloads_only_when_a_newer_version_is_live(tmp_path: Path) -> None:
    store, clock = IndexStore(tmp_path), FakeClock()
    live = LiveIndex(store, poll_s=5.0, clock=clock)
    with pytest.raises(IndexMissing):
        live.get()
    store.write(make("flat", n=10)[0])
    first, info = live.get()
    assert info.version == 1 and live.get()[0] is first
    store.write(make("flat", n=12)[0])
    assert live.get()[0] is first  # within the poll interval: no directory listing at all
    clock.now = 6.0
    index, info = live.get()
    assert info.version == 2 and len(index) == 12


def test_live_index_keeps_serving_when_the_newest_version_is_damaged(tmp_path: Path) -> None:
    store, clock = IndexStore(tmp_path), FakeClock()
    store.write(make("flat", n=10)[0])
    live = LiveIndex(store, poll_s=1.0, clock=clock)
    current, _ = live.get()
    store.write(make("flat", n=12)[0])
    (tmp_path / "v00000002.idx").write_bytes(b"garbage")
    clock.now = 2.0
    index, info = live.get()
    assert info.version == 1 and index is current
    store.write(make("flat", n=14)[0])
    live.invalidate()
    assert live.get()[1].version == 3


# ---- reconcile -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_reconcile_repairs_drift_both_ways(kind: str) -> None:
    index, ids, x = make(kind, n=100)
    index.remove(ids[:10])  # the database still has these: must come back
    stray = unit(5, seed=9)
    index.add(np.arange(5000, 5005), stray)  # rows deleted while the index was offline: must go
    assert plan_reconcile(index, ids)[0].tolist() == ids[:10].tolist()
    counts = reconcile(index, (ids, x))
    assert counts == {"added": 10, "removed": 5, "updated": 0}
    np.testing.assert_array_equal(index.ids(), ids)
    _, got = index.search(x[:10], 1)
    assert got[:, 0].tolist() == ids[:10].tolist()
    assert reconcile(index, (ids, x)) == {"added": 0, "removed": 0, "updated": 0}


def test_reconcile_with_a_mapping_reads_only_needed_vectors_and_can_fix_changed_ones() -> None:
    index, ids, x = make("flat", n=30)
    live = {int(i): v for i, v in zip(ids, x, strict=True)}
    live[int(ids[3])] = unit(1, seed=42)[0]  # re-embedded row
    live[777] = unit(1, seed=43)[0]
    assert reconcile(index, live) == {"added": 1, "removed": 0, "updated": 0}
    assert reconcile(index, live, check_vectors=True) == {"added": 0, "removed": 0, "updated": 1}
    np.testing.assert_allclose(index.vectors(ids[3:4])[0], live[int(ids[3])])


# ---- property test over random operation sequences -----------------------------------------------
class IndexMachine(RuleBasedStateMachine):
    """Random add/remove/replace/save/load sequences against a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="flatsite-index-"))
        self.store = IndexStore(self.tmp)
        self.model: dict[int, np.ndarray] = {}
        self.removed: set[int] = set()
        self.index = VectorIndex(IndexConfig(dim=8))

    @initialize(kind=st.sampled_from(KINDS))
    def start(self, kind: str) -> None:
        self.index = VectorIndex(IndexConfig(dim=8, tombstone_rebuild_fraction=0.3), kind)

    @rule(ids=st.lists(st.integers(0, 40), min_size=1, max_size=8), seed=st.integers(0, 2**16))
    def add(self, ids: list[int], seed: int) -> None:
        vecs = unit(len(ids), dim=8, seed=seed)
        self.index.add(np.array(ids), vecs)
        for i, v in zip(ids, vecs, strict=True):
            self.model[i] = v
            self.removed.discard(i)

    @rule(ids=st.lists(st.integers(0, 40), max_size=8))
    def remove(self, ids: list[int]) -> None:
        assert self.index.remove(np.array(ids, dtype=np.int64)) == len(set(ids) & self.model.keys())
        for i in set(ids) & self.model.keys():
            del self.model[i]
            self.removed.add(i)

    @rule()
    def save_and_reload(self) -> None:
        self.store.write(self.index)
        self.index, _ = self.store.load()

    @rule(k=st.integers(1, 50))
    def search_returns_only_live_ids_and_finds_stored_vectors(self, k: int) -> None:
        keys = sorted(self.model) + sorted(self.removed)
        if not keys:
            return
        q = np.stack([self.model.get(i, unit(1, dim=8, seed=i)[0]) for i in keys])
        _, got = self.index.search(q, k)
        assert not np.isin(got, list(self.removed)).any()
        assert set(got[got >= 0]) <= self.model.keys()
        for row, key in zip(got, keys, strict=True):
            if key in self.model:
                assert row[0] == key or np.isclose(self.model[int(row[0])] @ self.model[key], 1.0, atol=1e-5)

    @invariant()
    def ids_equal_model(self) -> None:
        assert self.index.ids().tolist() == sorted(self.model)
        assert len(self.index) == len(self.model)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


IndexMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_random_operation_sequences_match_a_dict_model = IndexMachine.TestCase
