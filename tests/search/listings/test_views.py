"""Listing page: what its live script needs to follow the jobs of photos still being processed."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from search.models import Job, Photo
from tests.factories import ListingFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_listing_page_names_each_received_photos_job_for_the_live_grid() -> None:
    listing = ListingFactory()
    job = Job.objects.create(kind=Job.Kind.INGEST, created_by=listing.owner)
    photo = Photo.objects.create(
        listing=listing, uploader=listing.owner, job=job, original_name="a.jpg", status=Photo.Status.RECEIVED
    )
    client = Client()
    client.force_login(listing.owner)
    page = client.get(reverse("listings:detail", args=[listing.pk])).content.decode()
    assert f'data-photo="{photo.pk}" data-status="received" data-job="{job.pk}"' in page
    assert f'data-thumb-url="{reverse("listings:photo-file", args=[photo.pk, "thumb"])}"' in page
    assert "js/jobs.js" in page and "js/listing.js" in page


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _shown(page: str) -> list[int]:
    """Listing ids of the table's rows, in page order."""
    return [int(pk) for pk in re.findall(r'<tr><td>(\d+)</td><td><a href="/listings/\d+/">', page)]


def test_listing_search_matches_title_address_or_external_id_ignoring_case() -> None:
    owner = UserFactory(role="admin")
    by_title = ListingFactory(owner=owner, title="Sunny LOFT")
    by_address = ListingFactory(owner=owner, title="Flat", address="12 Loft Street")
    by_id = ListingFactory(owner=owner, title="House", external_id="MLS-loft-7")
    ListingFactory(owner=owner, title="Cellar")
    page = _client(owner).get(reverse("listings:list"), {"q": "loft", "sort": "oldest"}).content.decode()
    assert _shown(page) == [by_title.pk, by_address.pk, by_id.pk]
    assert 'name="q" value="loft"' in page and '<option value="oldest" selected>' in page


def test_realtor_search_never_shows_another_agents_listing() -> None:
    realtor, other = UserFactory(role="realtor"), UserFactory(role="realtor")
    mine = ListingFactory(owner=realtor, title="Loft A")
    theirs = ListingFactory(owner=other, title="Loft B")
    assert _shown(_client(realtor).get(reverse("listings:list"), {"q": "loft"}).content.decode()) == [mine.pk]
    moderator = UserFactory(role="moderator")  # those who see every listing find it
    found = _shown(_client(moderator).get(reverse("listings:list"), {"q": "loft"}).content.decode())
    assert sorted(found) == sorted([mine.pk, theirs.pk])


def test_listing_list_sorts_by_title_or_price_with_unpriced_last() -> None:
    owner = UserFactory(role="realtor")
    b = ListingFactory(owner=owner, title="beta", price=300)
    a = ListingFactory(owner=owner, title="Alpha", price=None)
    c = ListingFactory(owner=owner, title="Gamma", price=100)
    client = _client(owner)
    assert _shown(client.get(reverse("listings:list"), {"sort": "title"}).content.decode()) == [
        a.pk,
        b.pk,
        c.pk,
    ]
    assert _shown(client.get(reverse("listings:list"), {"sort": "price"}).content.decode()) == [
        c.pk,
        b.pk,
        a.pk,
    ]
    assert _shown(client.get(reverse("listings:list")).content.decode()) == [c.pk, a.pk, b.pk]  # newest first


def test_listing_list_refuses_an_unknown_sort_with_a_message_and_shows_newest_first() -> None:
    owner = UserFactory(role="realtor")
    old, new = ListingFactory(owner=owner), ListingFactory(owner=owner)
    response = _client(owner).get(reverse("listings:list"), {"sort": "price;drop"})
    page = response.content.decode()
    assert response.status_code == 400 and "Unknown sort “price;drop”" in page
    assert _shown(page) == [new.pk, old.pk]


def test_listing_list_pages_51_listings_and_the_next_link_keeps_search_and_sort() -> None:
    owner = UserFactory(role="realtor")
    made = [ListingFactory(owner=owner, title=f"Loft {n:02}") for n in range(51)]
    client = _client(owner)
    first = client.get(reverse("listings:list"), {"q": "loft", "sort": "title"}).content.decode()
    assert _shown(first) == [x.pk for x in made[:50]] and "Page 1 of 2 (51 listings)" in first
    assert 'href="?q=loft&amp;sort=title&amp;page=2"' in first
    second = client.get(
        reverse("listings:list"), {"q": "loft", "sort": "title", "page": "2"}
    ).content.decode()
    assert _shown(second) == [made[50].pk] and "There is no page" not in second
    past = client.get(reverse("listings:list"), {"q": "loft", "sort": "title", "page": "3"})
    assert past.status_code == 200 and _shown(past.content.decode()) == [made[50].pk]
    assert "There is no page 3: showing page 2 of 2." in past.content.decode()
