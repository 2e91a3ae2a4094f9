"""The per-process cache of stored SIFT features: parsed once, bounded, and keyed on the Feature row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from search import local_cache
from search.local_cache import LocalFeaturesCache, local_features_cache
from search.ml.localmatch import LocalFeatures
from search.models import Feature, Photo
from tests.factories import ListingFactory

pytestmark = pytest.mark.django_db


def _features(seed: int, n: int = 40) -> LocalFeatures:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 300, (n, 2)).astype(np.float32)
    return LocalFeatures(points, rng.integers(0, 256, (n, 128), dtype=np.uint8), (320, 240))


def _photos(count: int) -> list[Photo]:
    listing = ListingFactory()
    photos = []
    for i in range(count):
        photo = Photo.objects.create(
            listing=listing, uploader=listing.owner, original_name=f"p{i}.jpg", sha256_bytes=f"{i:064x}"
        )
        Feature.objects.create(photo=photo, encoder="sift", data=_features(i).to_bytes())
        photos.append(photo)
    return photos


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = LocalFeatures.from_bytes
    monkeypatch.setattr(LocalFeatures, "from_bytes", lambda data: calls.append(1) or real(data))
    return calls


def test_features_are_the_stored_ones_cut_to_what_verification_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    photos = _photos(3)
    cache = LocalFeaturesCache(size=10, keep=25)
    got = cache.features([p.pk for p in photos] + [999_999])  # a photo without features: left out
    assert sorted(got) == sorted(p.pk for p in photos)
    for i, photo in enumerate(photos):
        expected = _features(i).strongest(25)
        np.testing.assert_array_equal(got[photo.pk].descriptors, expected.descriptors)
        np.testing.assert_array_equal(got[photo.pk].keypoints, expected.keypoints)


def test_a_second_lookup_parses_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    photos = _photos(3)
    cache = LocalFeaturesCache(size=10, keep=25)
    cache.features([p.pk for p in photos[:2]])
    parses = _parses(monkeypatch)
    cache.features([p.pk for p in photos])
    assert len(parses) == 1  # only the photo not seen before


def test_the_cache_keeps_at_most_its_size_dropping_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = _photos(3)
    cache = LocalFeaturesCache(size=2, keep=25)
    cache.features([a.pk])
    cache.features([b.pk])
    cache.features([a.pk])  # a used again: b is now the oldest
    cache.features([c.pk])
    assert len(cache) == 2
    parses = _parses(monkeypatch)
    cache.features([a.pk, c.pk])
    assert parses == []
    cache.features([b.pk])
    assert len(parses) == 1


def test_features_extracted_again_are_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    (photo,) = _photos(1)
    cache = LocalFeaturesCache(size=10, keep=25)
    cache.features([photo.pk])
    Feature.objects.filter(photo=photo).delete()
    Feature.objects.create(photo=photo, encoder="sift", data=_features(7).to_bytes())
    got = cache.features([photo.pk])[photo.pk]
    np.testing.assert_array_equal(got.descriptors, _features(7).strongest(25).descriptors)
    Feature.objects.filter(photo=photo).delete()
    assert cache.features([photo.pk]) == {}  # a photo whose features are gone has none


def test_the_process_cache_follows_its_size_setting(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_cache, "_cache", None)
    settings.FLATSITE_LOCAL_CACHE_SIZE = 5
    first = local_features_cache()
    assert first.size == 5 and local_features_cache() is first
    settings.FLATSITE_LOCAL_CACHE_SIZE = 7
    assert local_features_cache().size == 7
