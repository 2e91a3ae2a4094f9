"""Index service at scale: appends read no Feature rows, compaction folds segments and re-centres big ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.test import override_settings

from search.listings.selectors import features_matrix
from search.matching import index as index_service
from search.ml.index.segments import SegmentedIndex
from search.models import IndexVersion
from tests.factories import ListingFactory
from tests.search.matching.index_rows import ENCODER, photo_with_feature

pytestmark = pytest.mark.django_db


def _add(listing: Any, seeds: range) -> list[int]:
    rows = [photo_with_feature(listing, seed) for seed in seeds]
    ids = np.array([photo.pk for photo, _ in rows])
    index_service.index_add(ENCODER, ids, np.stack([vec for _, vec in rows]))
    return ids.tolist()


def _live() -> SegmentedIndex:
    index = index_service.index_for_search(ENCODER)
    assert isinstance(index, SegmentedIndex)
    return index


def _no_feature_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an upload read the Feature table")

    for name in ("feature_chunks", "feature_ids", "feature_mean", "feature_count"):
        monkeypatch.setattr(index_service, name, refuse)


@override_settings(FLATSITE_INDEX_CENTRE_MIN=4, FLATSITE_INDEX_COMPACT_MIN_ROWS=10)
def test_an_upload_to_a_large_collection_appends_one_segment_and_reads_no_feature_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listing = ListingFactory()
    _add(listing, range(0, 8))  # centred inline while small (8 rows, centre_count 8)
    segments = len(_live().segments)
    _no_feature_scans(monkeypatch)
    added = _add(listing, range(8, 20))  # 20 >= 2 x 8 would re-centre, but 20 > MIN_ROWS: not here
    index = _live()
    assert len(index.segments) == segments + 1 and index.segments[-1][0].count == 12
    assert index.contains(np.array(added)).all() and index.config.centre_count == 8


@override_settings(FLATSITE_INDEX_CENTRE_MIN=0, FLATSITE_INDEX_COMPACT_MIN_ROWS=1_000)
def test_forced_compaction_folds_every_segment_and_keeps_every_photo() -> None:
    listing = ListingFactory()
    ids = [*_add(listing, range(0, 5)), *_add(listing, range(5, 9)), *_add(listing, range(9, 12))]
    index_service.index_remove(ENCODER, ids[:2])
    before = _live()
    assert len(before.segments) == 3 and before.n_tombstones == 2
    q = before.vectors(np.array(ids[2:4]))

    report = index_service.index_compact(ENCODER, force=True)

    after = _live()
    assert report["compacted"] and len(after.segments) == 1 and after.n_tombstones == 0
    assert after.ids().tolist() == sorted(ids[2:])
    assert (after.search(q, 3, prepared=True)[1] == before.search(q, 3, prepared=True)[1]).all()
    live = IndexVersion.objects.get(encoder=ENCODER, status=IndexVersion.Status.LIVE)
    assert live.count == 10 and index_service.index_store(ENCODER).versions()[-1].meta["reason"] == "compact"


@override_settings(FLATSITE_INDEX_CENTRE_MIN=0)
def test_an_upload_during_a_compaction_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = ListingFactory()
    ids = [*_add(listing, range(0, 5)), *_add(listing, range(5, 9))]
    real_stage = index_service.compact_stage
    late: list[int] = []

    def stage_while_a_realtor_uploads(*args: Any) -> Any:
        staged = real_stage(*args)
        late.extend(_add(listing, range(9, 11)))  # the lock is free while the base is staged
        index_service.index_remove(ENCODER, ids[:1])
        return staged

    monkeypatch.setattr(index_service, "compact_stage", stage_while_a_realtor_uploads)
    assert index_service.index_compact(ENCODER, force=True)["compacted"]
    index_service._cache.clear()
    assert _live().ids().tolist() == sorted(ids[1:] + late)


@override_settings(FLATSITE_INDEX_CENTRE_MIN=4, FLATSITE_INDEX_COMPACT_MIN_ROWS=5)
def test_compaction_re_centres_a_collection_that_has_doubled_since_its_mean() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 5))
    _add(listing, range(5, 12))  # 12 > MIN_ROWS: the upload leaves the old mean (5)
    assert _live().config.centre_count == 5

    report = index_service.index_compact(ENCODER)

    index = _live()
    _ids, vectors = features_matrix(ENCODER)
    assert report["recentred"] and index.config.centre_count == 12 == len(index)
    assert np.allclose(index.config.centre_array, vectors.mean(axis=0), atol=1e-6)


@override_settings(FLATSITE_INDEX_CENTRE_MIN=0, FLATSITE_INDEX_COMPACT_MIN_ROWS=100)
def test_periodic_compaction_waits_until_it_is_due_and_skips_a_busy_encoder() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 5))
    _add(listing, range(5, 7))
    assert index_service.indexes_compact() == {ENCODER: {"compacted": False}}
    with index_service.index_store(ENCODER).lock():
        assert "skipped" in str(index_service.indexes_compact()[ENCODER])
    with override_settings(FLATSITE_INDEX_MAX_SEGMENTS=1):
        assert index_service.indexes_compact()[ENCODER]["compacted"]  # type: ignore[index]
    assert len(_live().segments) == 1
