"""Index service under faults: a damaged live file falls back and is repaired; a second reindex is refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection

from flatsite.jobs import services as jobs
from search.matching import features
from search.matching import index as index_service
from search.ml.index import IndexLocked
from search.models import IndexVersion, Job
from tests.factories import ListingFactory
from tests.search.matching.index_rows import ENCODER, photo_with_feature

pytestmark = pytest.mark.django_db


def _two_versions(listing: Any) -> tuple[list[int], dict[int, np.ndarray]]:
    """v1 by a rebuild of 6 photos, v2 (live) adding 2 more; returns all ids and their vectors."""
    rows = [photo_with_feature(listing, seed) for seed in range(8)]
    vectors = {photo.pk: vec for photo, vec in rows}
    ids = list(vectors)
    for photo, _vec in rows[6:]:  # their features arrive after the first build
        photo.features.all().delete()
    assert index_service.index_rebuild(ENCODER).version == 1
    for photo, vec in rows[6:]:
        photo.features.create(encoder=ENCODER, dim=vec.size, data=vec.tobytes())
    added = index_service.index_add(ENCODER, np.array(ids[6:]), np.stack([vectors[i] for i in ids[6:]]))
    assert (added.version, added.count, added.status) == (2, 8, IndexVersion.Status.LIVE)
    return ids, vectors


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip_byte":  # same size: only the checksum notices
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        path.unlink()


def _live() -> IndexVersion:
    return IndexVersion.objects.get(encoder=ENCODER, status=IndexVersion.Status.LIVE)


@pytest.mark.parametrize("how", ["truncate", "flip_byte", "delete"])
def test_search_on_a_damaged_live_version_serves_the_newest_good_one_and_writes_nothing(how: str) -> None:
    ids, _vectors = _two_versions(ListingFactory())
    _damage(Path(_live().path), how)

    index = index_service.index_for_search(ENCODER)

    # v1 lacks the two photos added in v2; search never repairs (that would be a rebuild per request).
    assert index is not None and sorted(index.ids().tolist()) == sorted(ids[:6])
    assert (_live().version, _live().status) == (2, IndexVersion.Status.LIVE)
    assert IndexVersion.objects.filter(encoder=ENCODER).count() == 2
    assert not (index_service.index_store(ENCODER).root / "v00000003.idx").exists()


@pytest.mark.parametrize("how", ["truncate", "flip_byte", "delete"])
def test_reconcile_repairs_a_damaged_live_version_from_the_previous_one_plus_the_database(how: str) -> None:
    ids, vectors = _two_versions(ListingFactory())
    _damage(Path(_live().path), how)

    index_service.index_reconcile(ENCODER)

    assert IndexVersion.objects.get(encoder=ENCODER, version=2).status == IndexVersion.Status.FAILED
    repaired = _live()
    assert (repaired.version, repaired.count) == (3, 8)
    index = index_service.index_for_search(ENCODER)
    assert index is not None and sorted(index.ids().tolist()) == sorted(ids)
    _scores, found = index.search(vectors[ids[-1]][None, :], 1)
    assert found[0, 0] == ids[-1]
    with pytest.raises(ValueError, match="failed"):
        index_service.index_set_live(ENCODER, 2)


def test_a_damaged_newest_segment_is_served_around_and_repaired_by_reconcile() -> None:
    ids, _vectors = _two_versions(ListingFactory())
    store = index_service.index_store(ENCODER)
    v1, v2 = store.versions()
    newest = (store.segment_names(v2) - store.segment_names(v1)).pop()  # the segment v2 appended
    _damage(store.root / newest, "flip_byte")

    index = index_service.index_for_search(ENCODER)
    assert index is not None and sorted(index.ids().tolist()) == sorted(ids[:6])

    index_service.index_reconcile(ENCODER)
    index_service._cache.clear()
    repaired = index_service.index_for_search(ENCODER)
    assert repaired is not None and sorted(repaired.ids().tolist()) == sorted(ids)


def test_with_no_good_version_left_search_finds_nothing_and_reconcile_rebuilds_from_the_database() -> None:
    ids, _vectors = _two_versions(ListingFactory())
    store = index_service.index_store(ENCODER)
    for name in store.segment_names(store.versions()[0]):  # the base segment every version shares
        _damage(store.root / name, "truncate")

    assert index_service.index_for_search(ENCODER) is None

    index_service.index_reconcile(ENCODER)
    index = index_service.index_for_search(ENCODER)
    assert index is not None and sorted(index.ids().tolist()) == sorted(ids)
    assert _live().count == len(ids)


def test_reconcile_replaces_a_damaged_live_version() -> None:
    ids, _vectors = _two_versions(ListingFactory())
    _damage(Path(_live().path), "flip_byte")

    index_service.index_reconcile(ENCODER)

    assert IndexVersion.objects.get(encoder=ENCODER, version=2).status == IndexVersion.Status.FAILED
    index = index_service.index_for_search(ENCODER)
    assert index is not None and sorted(index.ids().tolist()) == sorted(ids)


def test_while_a_reindex_holds_the_lock_search_serves_the_newest_good_version() -> None:
    ids, _vectors = _two_versions(ListingFactory())
    _damage(Path(_live().path), "truncate")
    store = index_service.index_store(ENCODER)

    with store.lock():  # a reindex is running elsewhere: search must neither wait nor write
        index = index_service.index_for_search(ENCODER)
        assert index is not None and sorted(index.ids().tolist()) == sorted(ids[:6])
        assert _live().version == 2

    index_service.index_reconcile(ENCODER)  # the periodic repair
    repaired = index_service.index_for_search(ENCODER)
    assert repaired is not None and sorted(repaired.ids().tolist()) == sorted(ids)


@pytest.mark.django_db(transaction=True)
def test_a_second_concurrent_reindex_is_refused_and_the_first_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [photo_with_feature(ListingFactory(), seed)[0].pk for seed in range(10)]
    building, release = threading.Event(), threading.Event()
    real_config = index_service._base_config

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        building.set()
        assert release.wait(30), "the test never let the first reindex finish"
        return real_config(*args, **kwargs)

    monkeypatch.setattr(index_service, "_base_config", slow_build)
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            outcome["row"] = index_service.index_rebuild(ENCODER)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert building.wait(30), "the first reindex never started building"
        with pytest.raises(IndexLocked, match="another reindex is running"):
            index_service.index_rebuild(ENCODER)
    finally:
        release.set()
        thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert IndexVersion.objects.filter(encoder=ENCODER).count() == 1
    store = index_service.index_store(ENCODER)
    assert [v.version for v in store.versions()] == [1] and store.is_valid(store.versions()[0])
    loaded, info = store.load()
    assert info.count == len(ids) and sorted(loaded.ids().tolist()) == sorted(ids)


def test_a_reindex_job_started_during_another_fails_with_a_clear_reason() -> None:
    photo_with_feature(ListingFactory(), 1)
    job = jobs.job_create(Job.Kind.REINDEX, params={"encoder": ENCODER})

    with index_service.index_store(ENCODER).lock():
        finished = features.job_operation_run(job.pk)

    assert finished.status == Job.Status.FAILED
    assert "another reindex is running" in finished.error
    assert not IndexVersion.objects.filter(encoder=ENCODER).exists()


def test_periodic_reconcile_adds_features_written_after_a_crash_and_skips_a_locked_encoder() -> None:
    listing = ListingFactory()
    for seed in range(3):
        photo_with_feature(listing, seed)
    index_service.index_rebuild(ENCODER)
    late, _vec = photo_with_feature(listing, 99)  # committed, but the worker died before the index write
    assert late.pk not in index_service.index_for_search(ENCODER).ids()  # type: ignore[union-attr]
    assert index_service.indexes_reconcile() == {ENCODER: {"added": 1, "removed": 0, "updated": 0}}
    assert late.pk in index_service.index_for_search(ENCODER).ids()  # type: ignore[union-attr]
    with index_service.index_store(ENCODER).lock():
        assert index_service.indexes_reconcile() == {ENCODER: "skipped: another reindex is running"}
