"""Search pages for realtors: what of another agent's listing they may open, and the links to it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search import pipeline
from search.listings import ingest, selectors
from search.matching import features, seen
from search.models import Photo, PhotoMatch
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory, UserFactory

pytestmark = pytest.mark.django_db

BERT_TITLE = "Garden flat with terrace"
BERT_ADDRESS = "12 Private Lane"


def _jpeg(seed: int) -> bytes:
    return images.encode(images.picture(seed, (320, 240)), "JPEG", quality=90)


def _ingest(listing: Any, files: dict[str, bytes]) -> dict[str, Photo]:
    items = [upload(name, data) for name, data in files.items()]
    result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=False)
    if result.job is not None:  # byte copies of stored photos are linked at once, with nothing to process
        pipeline.ingest_inline(result.job.pk)
    return {name: Photo.objects.get(listing=listing, original_name=name) for name in files}


@pytest.fixture
def world(realtor: Any, other_realtor: Any) -> dict[str, Any]:
    """Bert's listing (x, y, z); Alma's listing re-posts x and y byte for byte; Cleo's shares nothing."""
    alma, bert, cleo = realtor, other_realtor, UserFactory(role="realtor")
    pics = {name: _jpeg(400 + i) for i, name in enumerate("xyzw")}
    bert_listing = ListingFactory(owner=bert, title=BERT_TITLE, address=BERT_ADDRESS, price=987654)
    bert_photos = _ingest(bert_listing, {f"{n}.jpg": pics[n] for n in "xyz"})
    alma_listing = ListingFactory(owner=alma, title="Alma's loft")
    alma_photos = _ingest(alma_listing, {"mine-x.jpg": pics["x"], "mine-y.jpg": pics["y"]})
    assert {p.duplicate_of_id for p in alma_photos.values()} == {
        bert_photos["x.jpg"].pk,
        bert_photos["y.jpg"].pk,
    }
    cleo_listing = ListingFactory(owner=cleo, title="Cleo's studio")
    _ingest(cleo_listing, {"w.jpg": pics["w"]})
    return {
        "alma": alma,
        "bert": bert,
        "cleo": cleo,
        "pics": pics,
        "bert_listing": bert_listing,
        "alma_listing": alma_listing,
        "x": bert_photos["x.jpg"],
        "y": bert_photos["y.jpg"],
        "z": bert_photos["z.jpg"],
    }


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _matched_url(world: dict[str, Any]) -> str:
    return reverse("matching:listing-matched", args=[world["bert_listing"].pk])


def _thumb_status(client: Client, photo: Photo) -> int:
    return int(client.get(reverse("listings:photo-file", args=[photo.pk, "thumb"])).status_code)


def _shown_photos(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-photo="(\d+)"', html)}


def test_matched_page_shows_title_agent_and_only_the_photos_matching_the_realtor_s_own(
    world: dict[str, Any],
) -> None:
    response = _client(world["alma"]).get(_matched_url(world))
    assert response.status_code == 200
    html = response.content.decode()
    assert BERT_TITLE in html and world["bert"].get_username() in html
    assert _shown_photos(html) == {world["x"].pk, world["y"].pk}  # z matches nothing of Alma's
    assert BERT_ADDRESS not in html and "987654" not in html  # the full listing stays private


def test_a_realtor_sees_the_thumbnails_of_photos_matching_theirs_but_not_the_listing_s_other_photos(
    world: dict[str, Any],
) -> None:
    alma = _client(world["alma"])
    assert _thumb_status(alma, world["x"]) == 200 and _thumb_status(alma, world["y"]) == 200
    assert _thumb_status(alma, world["z"]) == 404
    assert alma.get(reverse("listings:detail", args=[world["bert_listing"].pk])).status_code == 404


def test_a_realtor_with_no_matching_photo_gets_404_on_the_matched_page_and_its_photos(
    world: dict[str, Any],
) -> None:
    cleo = _client(world["cleo"])
    response = cleo.get(_matched_url(world))
    assert response.status_code == 404
    assert "none of its photos matches yours" in response.content.decode()
    assert all(_thumb_status(cleo, world[name]) == 404 for name in "xyz")
    assert cleo.get(reverse("matching:search-photo", args=[world["x"].pk])).status_code == 404


def test_the_owner_and_a_moderator_are_sent_to_the_full_listing_from_the_matched_page(
    world: dict[str, Any], moderator: Any
) -> None:
    full = reverse("listings:detail", args=[world["bert_listing"].pk])
    for user in (world["bert"], moderator):
        response = _client(user).get(_matched_url(world))
        assert response.status_code == 302 and response["Location"] == full


def test_a_user_without_search_rights_is_refused_the_matched_page(world: dict[str, Any]) -> None:
    nobody = UserFactory()  # no role
    nobody.save()  # the factory saves only with a role: the session must see the hashed password
    response = _client(nobody).get(_matched_url(world))
    assert response.status_code == 403


def test_a_confirmed_match_with_one_of_their_photos_opens_that_photo_to_a_realtor(
    world: dict[str, Any],
) -> None:
    cleo_photo = Photo.objects.get(original_name="w.jpg")
    z = world["z"]
    assert selectors.photo_viewable(world["cleo"], z.pk) is None
    PhotoMatch.objects.create(
        photo_a_id=min(z.pk, cleo_photo.pk), photo_b_id=max(z.pk, cleo_photo.pk), level="same_room", score=0.5
    )
    assert selectors.photo_viewable(world["cleo"], z.pk) == z
    matched = selectors.listing_matched(world["cleo"], world["bert_listing"].pk)
    assert matched is not None and [p.pk for p in matched.photos] == [z.pk]


def test_duplicates_report_links_other_agents_listings_to_their_matched_page_only_where_they_open(
    world: dict[str, Any],
) -> None:
    matched, full = _matched_url(world), reverse("listings:detail", args=[world["bert_listing"].pk])
    alma_html = _client(world["alma"]).get(reverse("matching:duplicates")).content.decode()
    assert f'href="{matched}"' in alma_html and f'href="{full}"' not in alma_html
    assert f'href="{reverse("listings:detail", args=[world["alma_listing"].pk])}"' in alma_html
    # Cleo is in neither listing of the pair: she may open neither, so neither is linked.
    cleo_html = _client(world["cleo"]).get(reverse("matching:duplicates")).content.decode()
    cleo_table = cleo_html[cleo_html.index('<table class="grid duplicate-pairs">') :]
    assert BERT_TITLE in cleo_table and "href=" not in cleo_table
    bert_html = _client(world["bert"]).get(reverse("matching:duplicates")).content.decode()
    assert f'href="{full}"' in bert_html and f'href="{matched}"' not in bert_html


def test_own_listing_page_links_the_probable_duplicate_to_its_matched_page(world: dict[str, Any]) -> None:
    page = _client(world["alma"]).get(reverse("listings:detail", args=[world["alma_listing"].pk]))
    assert f'href="{_matched_url(world)}"' in page.content.decode()


def test_a_search_opens_the_photos_it_showed_and_links_their_listing_to_its_matched_page(
    world: dict[str, Any],
) -> None:
    features.extract_inline()
    cleo = _client(world["cleo"])
    query = SimpleUploadedFile("portal.jpg", world["pics"]["z"], content_type="image/jpeg")
    response = cleo.post(reverse("matching:search"), {"photo": query})
    assert response.status_code == 200
    html = response.content.decode()
    assert world["z"].pk in _shown_photos(html)
    assert f'href="{_matched_url(world)}"' in html
    assert f'href="{reverse("listings:detail", args=[world["bert_listing"].pk])}"' not in html
    assert _thumb_status(cleo, world["z"]) == 200
    page = cleo.get(_matched_url(world))
    assert page.status_code == 200 and world["z"].pk in _shown_photos(page.content.decode())
    # Another session of the same realtor has not searched: the photos stay closed there.
    assert _thumb_status(_client(world["cleo"]), world["z"]) == 404


def test_api_search_results_carry_the_listing_link_the_caller_may_open(world: dict[str, Any]) -> None:
    features.extract_inline()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=world['alma']).key}")
    query = SimpleUploadedFile("portal.jpg", world["pics"]["x"], content_type="image/jpeg")
    matches = api.post("/api/search/", {"photo": query}, format="multipart").json()["matches"]
    urls = {m["photo_id"]: m["listing_url"] for m in matches}
    alma_copy = Photo.objects.get(original_name="mine-x.jpg")
    assert urls[world["x"].pk] == _matched_url(world)  # matches Alma's own copy of it
    assert urls[alma_copy.pk] == reverse("listings:detail", args=[world["alma_listing"].pk])


def test_the_session_remembers_only_the_newest_shown_photos() -> None:
    session = SessionStore()
    seen.seen_add(session, range(seen.LIMIT))
    seen.seen_add(session, [5, seen.LIMIT, seen.LIMIT + 1])
    remembered = seen.seen_photos(session)
    assert len(remembered) == seen.LIMIT
    assert {5, seen.LIMIT, seen.LIMIT + 1} <= remembered and 0 not in remembered and 1 not in remembered
