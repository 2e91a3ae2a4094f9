"""Admin operations: re-extract and reindex jobs, the live index switch, the search encoder, their
confirmations and refusals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client

from search.matching import engine as selectors_search
from search.matching import features, index
from search.models import Feature, IndexVersion, Job, Photo, SearchEncoderChoice
from search.ops.views import OPERATIONS
from tests import images
from tests.factories import ListingFactory
from tests.flatsite.jobs.sending import task_send_replace

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


def _admin(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _live(encoder: str = "effnet-lite0") -> int:
    return IndexVersion.objects.get(encoder=encoder, status=IndexVersion.Status.LIVE).version


def _partial_and_full(realtor: Any) -> tuple[IndexVersion, IndexVersion]:
    """v1 holds 4 of the 10 photos stored now, v2 (live) all 10."""
    listing = ListingFactory(owner=realtor)
    _vectors(listing, 4)
    partial = index.index_rebuild("effnet-lite0")
    for i in range(4, 10):  # more photos, and their features, arrive after v1 was built
        photo = Photo.objects.create(
            listing=listing, uploader=realtor, original_name=f"{i}.jpg", sha256_bytes=f"{i:064d}",
            sha256_pixels=f"{i:064x}", status=Photo.Status.PROCESSED, image_path=f"photos/{i}.jpg",
        )  # fmt: skip
        vec = np.eye(8, dtype=np.float32)[i % 8]
        Feature.objects.create(photo=photo, encoder="effnet-lite0", dim=8, data=vec.tobytes())
    return partial, index.index_rebuild("effnet-lite0")


def test_a_pruned_version_is_not_offered_and_making_it_live_is_refused_with_nothing_changed(
    realtor: Any, admin_user: Any
) -> None:
    _vectors(ListingFactory(owner=realtor), 3)
    for _ in range(7):  # a rebuild keeps the newest 5 versions on disk: v1 and v2 are pruned
        index.index_rebuild("effnet-lite0")
    client = _admin(admin_user)
    html = client.get("/operations/").content.decode()
    section = html.split('id="index-versions"')[1].split("</section>")[0]
    offered = {int(v) for v in re.findall(r'name="version" value="(\d+)"><button>Make live', section)}
    assert offered == {3, 4, 5, 6}  # v7 is live
    assert "2 older versions not listed" in section
    response = client.post(
        "/operations/index-live/",
        {"encoder": "effnet-lite0", "version": "1", "confirmed": "yes"},
        follow=True,
    )
    assert (
        "Cannot switch, nothing was changed: effnet-lite0 index v1 cannot go live: its files were pruned"
        in (response.content.decode())
    )
    assert _live() == 7 and IndexVersion.objects.get(version=1).status == IndexVersion.Status.RETIRED


def test_a_version_whose_file_is_damaged_is_refused_by_its_checksum(realtor: Any, admin_user: Any) -> None:
    _vectors(ListingFactory(owner=realtor), 3)
    first = index.index_rebuild("effnet-lite0")
    index.index_rebuild("effnet-lite0")
    path = Path(first.path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="missing or damaged"):
        index.index_set_live("effnet-lite0", first.version)
    assert _live() == 2


def test_the_page_shows_each_versions_coverage_and_warns_about_a_partial_one(
    realtor: Any, admin_user: Any
) -> None:
    _partial_and_full(realtor)
    html = _admin(admin_user).get("/operations/").content.decode()
    section = html.split('id="index-versions"')[1].split("</section>")[0]
    assert "4 of 10 stored photos indexed (40 %)" in section
    assert "10 of 10 stored photos indexed (100 %)" in section
    assert section.count('data-testid="partial"') == 1 and "a search would miss 6 photos" in section


def test_make_live_asks_first_with_the_coverage_and_switches_only_when_confirmed(
    realtor: Any, admin_user: Any
) -> None:
    partial, _full = _partial_and_full(realtor)
    client = _admin(admin_user)
    asked = client.post(
        "/operations/index-live/", {"encoder": "effnet-lite0", "version": str(partial.version)}
    )
    html = asked.content.decode()
    assert asked.status_code == 200 and 'data-testid="confirm"' in html
    assert (
        "4 of 10 stored photos indexed (40 %)" in html and "will not find the other 6 stored photos" in html
    )
    assert "Every search switches to v1 at once" in html
    assert _live() == 2  # nothing changed yet
    done = client.post(
        "/operations/index-live/",
        {"encoder": "effnet-lite0", "version": "1", "confirmed": "yes"},
        follow=True,
    )
    assert "effnet-lite0 index v1 is now live." in done.content.decode()
    assert _live() == 1 and len(index.index_for_search("effnet-lite0") or []) == 4


def _spy_search_encoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Run an image search and return the encoders whose live index it asked for."""
    asked: list[str] = []

    def index_for_search(encoder: str) -> None:
        asked.append(encoder)

    monkeypatch.setattr(selectors_search, "index_for_search", index_for_search)
    path = tmp_path / "q.png"
    images.picture(1, (64, 48)).save(path, "PNG")
    selectors_search.image_search(selectors_search.query_from_file(path, "q.png"))
    return asked


def test_choosing_the_search_encoder_switches_what_search_uses_once_confirmed(
    realtor: Any, admin_user: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listing = ListingFactory(owner=realtor)
    for i, photo_id in enumerate(_vectors(listing, 3)):
        vec = np.eye(8, dtype=np.float32)[i]
        Feature.objects.create(photo_id=photo_id, encoder="effnet-lite2", dim=8, data=vec.tobytes())
    index.index_rebuild("effnet-lite0")
    index.index_rebuild("effnet-lite2")
    client = _admin(admin_user)
    page = client.get("/operations/").content.decode()
    assert (
        "Search uses <strong>effnet-lite0</strong>" in page
        and page.count("<button>Use for search</button>") == 1
    )
    asked = client.post("/operations/search-encoder/", {"encoder": "effnet-lite2"}).content.decode()
    assert "Search with effnet-lite2?" in asked and "3 of 3 stored photos indexed (100 %)" in asked
    assert not SearchEncoderChoice.objects.exists() and _spy_search_encoder(monkeypatch, tmp_path) == [
        "effnet-lite0"
    ]
    done = client.post(
        "/operations/search-encoder/", {"encoder": "effnet-lite2", "confirmed": "yes"}, follow=True
    )
    assert "Search now uses effnet-lite2." in done.content.decode()
    assert SearchEncoderChoice.objects.get().chosen_by == admin_user
    assert _spy_search_encoder(monkeypatch, tmp_path)[0] == "effnet-lite2"
    assert features.active_encoders()[0] == "effnet-lite2"


def test_an_encoder_without_a_loadable_live_index_cannot_become_the_search_encoder(admin_user: Any) -> None:
    response = _admin(admin_user).post(
        "/operations/search-encoder/", {"encoder": "effnet-lite2", "confirmed": "yes"}, follow=True
    )
    assert (
        "nothing was changed: effnet-lite2 has no live index: rebuild its index first"
        in response.content.decode()
    )
    assert not SearchEncoderChoice.objects.exists()


@pytest.mark.parametrize(
    ("operation", "says"),
    [
        ("extract", "Recomputes the effnet-lite0 features of all 5 stored photos"),
        ("reindex", "The new version: 5 of 5 stored photos indexed (100 %)."),
    ],
)
def test_re_extract_and_rebuild_ask_first_and_queue_nothing_until_confirmed(
    realtor: Any,
    admin_user: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    operation: str,
    says: str,
) -> None:
    sent: list[int] = []
    task_send_replace(monkeypatch, OPERATIONS[operation], sent.append)
    _vectors(ListingFactory(owner=realtor), 5)
    index.index_rebuild("effnet-lite0")
    client = _admin(admin_user)
    asked = client.post("/operations/", {"operation": operation, "encoder": "effnet-lite0"})
    html = asked.content.decode()
    assert asked.status_code == 200 and 'data-testid="confirm"' in html and says in html
    assert "Searches keep using the current live effnet-lite0 index v1 until the new version is live." in html
    assert not Job.objects.exists() and sent == []
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/operations/", {"operation": operation, "encoder": "effnet-lite0", "confirmed": "yes"}
        )
    job = Job.objects.get()
    assert done["Location"] == f"/jobs/{job.pk}/" and sent == [job.pk] and job.kind == OPERATIONS[operation]


def test_a_rebuild_without_features_is_refused_before_the_confirmation(admin_user: Any) -> None:
    response = _admin(admin_user).post(
        "/operations/", {"operation": "reindex", "encoder": "effnet-lite0"}, follow=True
    )
    assert "no effnet-lite0 features to index: run Re-extract all first" in response.content.decode()
    assert not Job.objects.exists()
