"""The search page in a realtor's words: plain sentences, numbers one click away, shareable filters."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from search.models import Photo
from tests import images
from tests.search.matching.test_engine import _collection, _edited

pytestmark = pytest.mark.django_db


@pytest.fixture
def collection(realtor: Any) -> dict[str, Any]:
    return _collection(realtor)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _search_edited_copy(collection: dict[str, Any], user: Any) -> str:
    data = images.encode(_edited(collection["pics"]["p2"]), "JPEG", quality=85)
    query = SimpleUploadedFile("portal.jpg", data, content_type="image/jpeg")
    response = _client(user).post(reverse("matching:search"), {"photo": query})
    assert response.status_code == 200
    return str(response.content.decode())


def _outside_details(html: str) -> str:
    return re.sub(r"<details.*?</details>", "", html, flags=re.S)


def test_the_page_says_what_a_match_is_in_words_and_keeps_the_numbers_in_a_disclosure(
    collection: dict[str, Any], realtor: Any
) -> None:
    html = _search_edited_copy(collection, realtor)
    assert "Same photo, cropped and mirrored; " in html and "% of it matches" in html
    visible = _outside_details(html)
    assert "inliers" not in visible and "pHash" not in visible and "phash" not in visible
    assert re.search(
        r"<details class=\"[^\"]*evidence-numbers[^\"]*\"><summary>numbers</summary>.*?inliers", html, re.S
    )


def test_the_page_says_so_when_no_similar_look_clears_the_threshold(
    collection: dict[str, Any], realtor: Any, settings: Any
) -> None:
    settings.FLATSITE_MATCH_THRESHOLDS = {"similar_min_score": 1.01, "similar_min_centred": 1.01}
    html = _search_edited_copy(collection, realtor)
    assert 'data-level="similar"' not in html
    assert "No similar looks above the threshold." in html
    assert 'data-level="edited"' in html  # copies are found as before


def test_by_listing_counts_matched_photos_apart_from_similar_looks(
    collection: dict[str, Any], realtor: Any, settings: Any
) -> None:
    settings.FLATSITE_MATCH_THRESHOLDS = {"similar_min_score": -1.0, "similar_min_centred": -1.0}
    html = _search_edited_copy(collection, realtor)
    row = re.search(rf'<tr data-listing="{collection["second"].pk}".*?</tr>', html, re.S)
    assert row is not None
    assert re.search(
        r'<td class="num">1 <span class="muted similar-count">\+1 similar look</span></td>', row[0]
    )


def test_a_stored_photo_search_filters_by_level_and_agent_in_its_url(
    collection: dict[str, Any], realtor: Any, settings: Any
) -> None:
    settings.FLATSITE_MATCH_THRESHOLDS = {"similar_min_score": -1.0, "similar_min_centred": -1.0}
    photo = Photo.objects.get(original_name="p0.jpg")
    url = reverse("matching:search-photo", args=[photo.pk])
    client = _client(realtor)
    levels = set(re.findall(r'data-level="(\w+)"', client.get(url).content.decode()))
    assert levels == {"similar"}
    other_agent = collection["second"].owner.get_username()
    html = client.get(url, {"level": "similar", "agent": other_agent}).content.decode()
    shown = {int(pk) for pk in re.findall(r'<figure class="thumb match[^>]*data-photo="(\d+)"', html)}
    assert shown == set(Photo.objects.filter(listing=collection["second"]).values_list("pk", flat=True))
    assert 'name="agent" value="' + other_agent + '"' in html
    nothing = client.get(url, {"level": "edited"}).content.decode()
    assert 'data-level="similar"' not in nothing
