"""Listing page: what its live script needs to follow the jobs of photos still being processed."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from search.models import Job, Photo
from tests.factories import ListingFactory

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
