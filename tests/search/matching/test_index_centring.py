"""Index service centring: a collection gets a mean once it is big enough and a fresh one when it doubles."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import override_settings

from search.listings.selectors import features_matrix
from search.matching import index as index_service
from tests.factories import ListingFactory
from tests.search.matching.index_rows import ENCODER, photo_with_feature

pytestmark = pytest.mark.django_db


def _add(listing: object, seeds: range) -> None:
    rows = [photo_with_feature(listing, seed) for seed in seeds]
    ids = np.array([photo.pk for photo, _ in rows])
    index_service.index_add(ENCODER, ids, np.stack([vec for _, vec in rows]))


def _live_index() -> index_service.VectorIndex:
    index = index_service.index_for_search(ENCODER)
    assert index is not None
    return index


@override_settings(FLATSITE_INDEX_CENTRE_MIN=6)
def test_small_collections_stay_raw_and_get_centred_at_the_threshold() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 4))
    assert _live_index().config.centre is None
    _add(listing, range(4, 7))
    index = _live_index()
    _ids, vectors = features_matrix(ENCODER)
    assert index.config.centre_count == 7 == len(index)
    assert np.allclose(index.config.centre_array, vectors.mean(axis=0), atol=1e-6)
    assert index_service.index_store(ENCODER).versions()[-1].meta["reason"] == "recentre"


@override_settings(FLATSITE_INDEX_CENTRE_MIN=4)
def test_the_mean_is_kept_until_the_collection_doubles() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 5))
    assert _live_index().config.centre_count == 5
    _add(listing, range(5, 9))  # 9 < 2 x 5: the old mean still serves
    assert _live_index().config.centre_count == 5
    _add(listing, range(9, 10))  # 10 = 2 x 5
    assert _live_index().config.centre_count == 10


@override_settings(FLATSITE_INDEX_CENTRE_MIN=4)
def test_a_centred_index_ranks_by_centred_cosine() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 12))
    ids, vectors = features_matrix(ENCODER)
    centred = vectors - vectors.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    scores, found = _live_index().search(vectors[:1], 3)
    expected = np.argsort(-(centred @ centred[0]))[:3]
    assert found[0].tolist() == ids[expected].tolist()
    assert np.allclose(scores[0], (centred @ centred[0])[expected], atol=1e-4)


@override_settings(FLATSITE_INDEX_CENTRE_MIN=4)
def test_rebuild_centres_on_the_current_collection() -> None:
    listing = ListingFactory()
    for seed in range(6):
        photo_with_feature(listing, seed)
    index_service.index_rebuild(ENCODER)
    assert _live_index().config.centre_count == 6


@override_settings(FLATSITE_INDEX_CENTRE_MIN=0)
def test_centring_can_be_switched_off() -> None:
    listing = ListingFactory()
    _add(listing, range(0, 60))
    assert _live_index().config.centre is None
