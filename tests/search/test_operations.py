"""Admin operations: re-extract and reindex jobs, the live index switch, and their refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.test import Client

from search.models import Feature, IndexVersion, Job, Photo
from search.services import features, index
from tests.factories import ListingFactory

pytestmark = pytest.mark.django_db


def _vectors(listing: Any, n: int, encoder: str = "effnet-lite0") -> list[int]:
    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        photo = Photo.objects.create(
            listing=listing,
            uploader=listing.owner,
            original_name=f"{i}.jpg",
            sha256_bytes=f"{i:064d}",
            sha256_pixels=f"{i:064x}",
            status=Photo.Status.PROCESSED,
            image_path=f"photos/{i}.jpg",
        )
        vec = rng.normal(size=8).astype(np.float32)
        Feature.objects.create(
            photo=photo, encoder=encoder, dim=8, data=(vec / np.linalg.norm(vec)).tobytes()
        )
        ids.append(photo.pk)
    return ids


def test_reindex_builds_a_live_version_and_switching_back_is_possible(realtor: Any) -> None:
    _vectors(ListingFactory(owner=realtor), 5)
    first = index.index_rebuild("effnet-lite0")
    second = index.index_rebuild("effnet-lite0")
    assert IndexVersion.objects.get(status=IndexVersion.Status.LIVE) == second
    index.index_set_live("effnet-lite0", first.version)
    assert IndexVersion.objects.get(status=IndexVersion.Status.LIVE).version == first.version
    assert len(index.index_for_search("effnet-lite0") or []) == 5


def test_reconcile_repairs_an_index_that_lost_and_kept_rows(realtor: Any) -> None:
    ids = _vectors(ListingFactory(owner=realtor), 6)
    index.index_rebuild("effnet-lite0")
    Feature.objects.filter(photo_id=ids[0]).delete()
    index.index_remove("effnet-lite0", [ids[1]])
    counts = index.index_reconcile("effnet-lite0")
    assert counts["added"] == 1 and counts["removed"] == 1
    live = index.index_for_search("effnet-lite0")
    assert live is not None and sorted(live.ids().tolist()) == sorted(ids[1:])


def test_unknown_or_busy_operations_are_refused_with_a_reason(admin_user: Any) -> None:
    with pytest.raises(ValueError, match=r"not available|[Uu]nknown"):
        features.operation_enqueue(Job.Kind.REINDEX, user=admin_user, encoder="no-such-encoder")
    features.operation_enqueue(Job.Kind.REINDEX, user=admin_user, encoder="effnet-lite0")
    with pytest.raises(ValueError, match="already queued or running"):
        features.operation_enqueue(Job.Kind.REINDEX, user=admin_user, encoder="effnet-lite0")


def test_operations_page_is_for_admins_only(admin_user: Any, moderator: Any) -> None:
    client = Client()
    client.force_login(moderator)
    assert client.get("/operations/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/operations/")
    assert page.status_code == 200 and b"effnet-lite0" in page.content
