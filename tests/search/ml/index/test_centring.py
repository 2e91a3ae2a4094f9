"""Centred indexes: stored and query vectors minus the collection mean, kept through every mutation."""

from __future__ import annotations

import io

import numpy as np
import pytest

from search.ml.index import IndexConfig, VectorIndex, build_index, reconcile

DIM = 8


def _shared_direction(n: int, seed: int = 0) -> np.ndarray:
    """(n, DIM) unit vectors that all share one strong direction, like CNN features of indoor photos."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32) * 0.3
    x[:, 0] += 3.0
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _centred_config(x: np.ndarray) -> IndexConfig:
    return IndexConfig(dim=DIM, centre=tuple(x.mean(axis=0).tolist()), centre_count=len(x))


def _brute_centred(x: np.ndarray, q: np.ndarray, mean: np.ndarray) -> np.ndarray:
    xc = x - mean
    xc /= np.linalg.norm(xc, axis=1, keepdims=True)
    qc = q - mean
    qc /= np.linalg.norm(qc, axis=-1, keepdims=True)
    return xc @ qc  # (N,)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_centred_index_scores_are_cosines_of_centred_vectors(kind: str) -> None:
    x = _shared_direction(60)
    cfg = _centred_config(x)
    index = VectorIndex(cfg, kind)
    index.add(np.arange(60), x)
    scores, ids = index.search(x[:1], 5)
    expected = _brute_centred(x, x[0], x.mean(axis=0))
    assert ids[0].tolist() == np.argsort(-expected)[:5].tolist()
    assert np.allclose(scores[0], np.sort(expected)[::-1][:5], atol=1e-4)


def test_centring_spreads_scores_that_raw_cosines_compress() -> None:
    x = _shared_direction(60)
    raw = build_index(np.arange(60), x, IndexConfig(dim=DIM))
    centred = build_index(np.arange(60), x, _centred_config(x))
    raw_scores, _ = raw.search(x[:1], 60)
    centred_scores, _ = centred.search(x[:1], 60)
    assert raw_scores[0, 1:].min() > 0.7  # everything looks alike
    assert centred_scores[0, 1:].min() < 0.0  # unrelated vectors become dissimilar


def test_centre_survives_save_and_load() -> None:
    x = _shared_direction(30)
    index = build_index(np.arange(30), x, _centred_config(x))
    buf = io.BytesIO()
    index.save_to(buf)
    buf.seek(0)
    loaded = VectorIndex.load_from(buf)
    assert loaded.config.centre == index.config.centre and loaded.config.centre_count == 30
    assert np.array_equal(loaded.search(x[:3], 4)[1], index.search(x[:3], 4)[1])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_rebuild_and_removal_do_not_centre_twice(kind: str) -> None:
    x = _shared_direction(40)
    index = VectorIndex(_centred_config(x), kind)
    index.add(np.arange(40), x)
    before = index.vectors(np.arange(10, 40))
    index.remove(np.arange(10))
    index.rebuild()
    assert np.allclose(index.vectors(np.arange(10, 40)), before, atol=1e-6)


def test_reconcile_with_checked_vectors_sees_no_change_in_a_centred_index() -> None:
    x = _shared_direction(20)
    index = build_index(np.arange(20), x, _centred_config(x))
    counts = reconcile(index, (np.arange(20), x), check_vectors=True)
    assert counts == {"added": 0, "removed": 0, "updated": 0}
    x2 = x.copy()
    x2[3] = x[4]  # the database now holds another vector for id 3
    assert reconcile(index, (np.arange(20), x2), check_vectors=True)["updated"] == 1
    assert index.search(x[4:5], 2)[1][0].tolist() in ([3, 4], [4, 3])


def test_a_centre_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="centre"):
        IndexConfig(dim=DIM, centre=(0.0,) * (DIM - 1))
    with pytest.raises(ValueError, match="centre"):
        IndexConfig(dim=DIM, centre=(float("nan"),) * DIM)
