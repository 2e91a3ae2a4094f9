"""One contract for every VectorBackend: the in-memory adapter and Milvus (milvus-lite, the real engine)."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from search.ml.index.backend import MemoryBackend, VectorBackend

DIM = 32
HAS_MILVUS = importlib.util.find_spec("milvus_lite") is not None and importlib.util.find_spec("pymilvus")
_names = itertools.count()

Factory = Callable[[], VectorBackend]


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One milvus-lite database per module: start-up is ~0.3 s, collections keep the tests apart."""
    yield str(tmp_path_factory.mktemp("milvus") / "vectors.db")
    if HAS_MILVUS:
        # Stopped here, while pytest still captures output: its atexit handler would log to closed streams.
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_all()


@pytest.fixture(params=["memory", "milvus"])
def make(request: pytest.FixtureRequest, milvus_uri: str) -> Iterator[Factory]:
    """A factory of backends; for Milvus, every call opens a new client on the same collection."""
    if request.param == "memory":
        backend = MemoryBackend(DIM)
        yield lambda: backend
        return
    if not HAS_MILVUS:
        pytest.skip("milvus-lite / pymilvus are not installed")
    from search.ml.index.milvus import MilvusBackend

    name = f"c{next(_names)}"
    opened: list[MilvusBackend] = []

    def open_backend() -> VectorBackend:
        opened.append(MilvusBackend(milvus_uri, name, DIM))
        return opened[-1]

    yield open_backend
    for backend in opened:
        backend.close()


def test_backends_satisfy_the_protocol(make: Factory) -> None:
    assert isinstance(make(), VectorBackend)


def test_every_vector_finds_itself_first(make: Factory) -> None:
    backend = make()
    ids = np.arange(300, dtype=np.int64) * 7 + 3
    x = unit(300, 0)
    backend.add(ids, x)
    backend.flush()
    assert len(backend) == 300
    scores, found = backend.search(x, 5)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (300, 5)
    np.testing.assert_array_equal(found[:, 0], ids)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    np.testing.assert_allclose(backend.vectors(ids[[5, 1]]), x[[5, 1]], atol=1e-6)


def test_add_with_a_known_id_replaces_the_vector(make: Factory) -> None:
    backend = make()
    x, y = unit(50, 1), unit(1, 2)
    backend.add(np.arange(50), x)
    backend.add(np.array([10]), y)
    assert len(backend) == 50
    np.testing.assert_allclose(backend.vectors(np.array([10])), y, atol=1e-6)
    _, found = backend.search(x[10:11], 50)
    assert found[0, 0] != 10  # the old vector is gone
    _, found = backend.search(y, 1)
    assert found[0, 0] == 10


def test_removed_ids_leave_search_and_vectors(make: Factory) -> None:
    backend = make()
    x = unit(100, 3)
    backend.add(np.arange(100), x)
    assert backend.remove(np.array([4, 5, 5, 1000])) == 2  # duplicates and unknown ids are not counted
    assert len(backend) == 98
    _, found = backend.search(x[[4, 5]], 100)
    assert not np.isin(found, [4, 5]).any()
    with pytest.raises(KeyError, match="4"):
        backend.vectors(np.array([4]))


def test_search_pads_when_k_exceeds_the_count(make: Factory) -> None:
    backend = make()
    backend.add(np.array([1, 2, 3]), unit(3, 4))
    scores, found = backend.search(unit(2, 5), 6)
    assert (found[:, :3] >= 0).all() and (found[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all() and np.isfinite(scores[:, :3]).all()


@pytest.mark.parametrize(
    "ids, vectors, message",
    [
        (np.array([1]), np.ones((1, DIM + 1), np.float32) / np.sqrt(DIM + 1), "shape"),
        (np.array([1]), np.ones((1, DIM), np.float32), "L2-normalised"),
        (np.array([-3]), unit(1, 6), ">= 0"),
        (np.array([1, 2]), unit(1, 6), "2 ids but 1 vectors"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    make: Factory, ids: np.ndarray, vectors: np.ndarray, message: str
) -> None:
    backend = make()
    with pytest.raises(ValueError, match=message):
        backend.add(ids, vectors)
    assert len(backend) == 0
    with pytest.raises(ValueError, match="shape"):
        backend.search(np.ones((1, DIM - 1), np.float32), 3)


def test_flushed_writes_survive_a_new_client(make: Factory) -> None:
    x = unit(200, 7)
    first = make()
    first.add(np.arange(200), x)
    first.remove(np.array([0]))
    first.flush()
    second = make()
    assert len(second) == 199
    _, found = second.search(x[1:], 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(1, 200))
    np.testing.assert_allclose(second.vectors(np.array([42])), x[42:43], atol=1e-6)


@pytest.mark.skipif(not HAS_MILVUS, reason="milvus-lite / pymilvus are not installed")
def test_milvus_refuses_a_collection_of_another_dim(milvus_uri: str, tmp_path: Path) -> None:
    from search.ml.index.milvus import MilvusBackend

    MilvusBackend(milvus_uri, "dim_check", DIM).close()
    with pytest.raises(ValueError, match=f"holds dim {DIM}, not 8"):
        MilvusBackend(milvus_uri, "dim_check", 8)


_WRITER = """
import os, sys
import numpy as np
from search.ml.index.milvus import MilvusBackend
x = np.random.default_rng(8).standard_normal((120, {dim})).astype(np.float32)
backend = MilvusBackend(sys.argv[1], "durable", {dim})
backend.add(np.arange(120), x / np.linalg.norm(x, axis=1, keepdims=True))
backend.flush()
os._exit(0)  # no close, no clean shutdown: only what flush made durable survives
"""


@pytest.mark.skipif(not HAS_MILVUS, reason="milvus-lite / pymilvus are not installed")
def test_milvus_writes_survive_the_writing_process_dying(tmp_path: Path) -> None:
    from search.ml.index.milvus import MilvusBackend

    uri = str(tmp_path / "durable.db")
    root = Path(__file__).resolve().parents[4]
    code = _WRITER.format(dim=DIM)
    subprocess.run([sys.executable, "-c", code, uri], check=True, cwd=root, timeout=120)
    backend = MilvusBackend(uri, "durable", DIM)
    try:
        assert len(backend) == 120
        x = np.random.default_rng(8).standard_normal((120, DIM)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        _, found = backend.search(x, 1)
        np.testing.assert_array_equal(found[:, 0], np.arange(120))
    finally:
        backend.close()
