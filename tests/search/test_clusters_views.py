"""Moderator clustering pages: who may see and act, gallery cost at 10 000 members, actions through POSTs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from search.models import Cluster, Job, Membership, ModeratorAction, Photo
from search.services import jobs
from tests.factories import ListingFactory, UserFactory
from tests.search.cluster_fixtures import blob_photos, fake_run, run_inline

pytestmark = pytest.mark.django_db
ROLES = ("anonymous", "realtor", "moderator", "admin")


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    users = {role: UserFactory(role=role) for role in ROLES if role != "anonymous"}
    listing = ListingFactory(owner=users["realtor"])
    blobs = blob_photos(listing, (20, 14), seed=51)
    run = fake_run(blobs)
    found = [Membership.objects.get(run=run, photo=blob[0]).cluster for blob in blobs]
    return {"users": users, "run": run, "blobs": blobs, "clusters": found, "listing": listing}


def _client(world: dict[str, Any], role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(world["users"][role])
    return client


PAGES = [
    "/clusters/",
    "/clusters/runs/",
    "/clusters/runs/{run}/",
    "/clusters/{cluster}/",
    "/clusters/{cluster}/?order=confidence&page=1",
    "/clusters/runs/{run}/noise/",
    "/clusters/map/",
    "/clusters/runs/{run}/map/",
    "/clusters/runs/{run}/map.json",
    "/clusters/history/",
    "/clusters/photos/{photo}/",
]


def _fill(world: dict[str, Any], url: str) -> str:
    return url.format(run=world["run"].pk, cluster=world["clusters"][0].pk, photo=world["blobs"][0][0].pk)


@pytest.mark.parametrize("role", ROLES)
def test_pages_are_for_moderators_and_admins(world: dict[str, Any], role: str) -> None:
    client = _client(world, role)
    for url in PAGES:
        response = client.get(_fill(world, url))
        if role == "anonymous":
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
        else:
            want = 200 if role in ("moderator", "admin") else 403
            assert response.status_code == want, (url, response.content[:200])


ACTIONS = [
    ("/clusters/{cluster}/name/", {"name": "Kitchen"}),
    ("/clusters/{cluster}/approve/", {}),
    ("/clusters/photos/noise/", {"run": "{run}", "photo": "{photo}"}),
    ("/clusters/undo/", {"run": "{run}"}),
]


@pytest.mark.parametrize("role", ROLES)
def test_actions_are_for_moderators_and_admins(world: dict[str, Any], role: str) -> None:
    client = _client(world, role)
    for url, data in ACTIONS:
        before = ModeratorAction.objects.count()
        response = client.post(_fill(world, url), {k: _fill(world, v) for k, v in data.items()})
        if role in ("moderator", "admin"):
            assert response.status_code == 302 and ModeratorAction.objects.count() == before + 1, url
        elif role == "anonymous":
            assert "/accounts/login/" in response["Location"] and ModeratorAction.objects.count() == before
        else:
            assert response.status_code == 403 and ModeratorAction.objects.count() == before, url


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_start_runs_and_switch_the_current_one(world: dict[str, Any], role: str) -> None:
    client = _client(world, role)
    response = client.post("/clusters/runs/start/", {"min_cluster_size": "6"})
    started = Job.objects.filter(kind=Job.Kind.CLUSTER, created_by__isnull=False).first()
    switched = client.post(f"/clusters/runs/{world['run'].pk}/current/")
    if role == "admin":
        assert started is not None and response["Location"] == f"/jobs/{started.pk}/"
        assert started.params["config"]["min_cluster_size"] == 6
        assert switched.status_code == 302
    else:
        assert started is None and response.status_code in (302, 403) and switched.status_code in (302, 403)


def test_a_moderator_names_moves_and_undoes_through_the_pages(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    a, b = world["clusters"]
    photo = world["blobs"][0][1]
    response = client.post(f"/clusters/{a.pk}/name/", {"name": "Kitchen"}, follow=True)
    assert "Kitchen" in response.content.decode()
    page = f"/clusters/{a.pk}/?page=1"
    response = client.post(
        "/clusters/photos/move/", {"run": world["run"].pk, "photo": [photo.pk], "target": b.pk, "next": page}
    )
    assert response.status_code == 302 and response["Location"] == page
    assert Membership.objects.get(run=world["run"], photo=photo).cluster_id == b.pk
    history = client.get("/clusters/history/").content.decode()
    assert "Named Cluster #" in history and "Moved 1 photo into" in history
    client.post("/clusters/undo/", {"run": world["run"].pk})
    assert Membership.objects.get(run=world["run"], photo=photo).cluster_id == a.pk


def test_map_selection_sends_comma_separated_ids(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    picked = [p.pk for p in world["blobs"][0][:3]]
    client.post(
        "/clusters/photos/split/",
        {"run": world["run"].pk, "photo": ",".join(map(str, picked)), "name": "Nook"},
    )
    new = Cluster.objects.get(run=world["run"], name="Nook")
    assert set(Membership.objects.filter(cluster=new).values_list("photo_id", flat=True)) == set(picked)


def test_bad_input_is_reported_not_crashed(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    response = client.post(
        "/clusters/photos/move/", {"run": world["run"].pk, "photo": "1,abc", "target": "x"}, follow=True
    )
    assert response.status_code == 200 and "choose the cluster" in response.content.decode()
    response = client.post(
        "/clusters/photos/move/",
        {"run": world["run"].pk, "photo": "1,abc", "target": world["clusters"][0].pk},
        follow=True,
    )
    assert "not a photo or cluster id" in response.content.decode()
    response = client.post("/clusters/undo/", {"run": "x"})
    assert response.status_code == 404


def test_gallery_and_list_show_names_flags_and_representatives(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    a = world["clusters"][0]
    listing = client.get("/clusters/").content.decode()
    assert listing.count('class="strip"') == 2 and f'href="/clusters/{a.pk}/"' in listing
    gallery = client.get(f"/clusters/{a.pk}/?order=confidence").content.decode()
    assert gallery.count('class="member') == Membership.objects.filter(cluster=a).count()
    assert '/thumb.jpg"' in gallery and "/image.jpg" not in gallery  # thumbnails, never the large image


def _big_cluster(world: dict[str, Any], n: int) -> Cluster:
    """A cluster of n members made directly in the database (no fitting)."""
    listing = world["listing"]
    photos = Photo.objects.bulk_create(
        Photo(
            listing=listing,
            uploader=listing.owner,
            original_name=f"big{i}.jpg",
            sha256_bytes=f"big{i}",
            status=Photo.Status.PROCESSED,
            image_path=f"photos/big{i}.jpg",
            thumb_path=f"thumbs/big{i}.jpg",
        )
        for i in range(n)
    )
    cluster = Cluster.objects.create(run=world["run"], label=99, key=10**9, name="Big")
    Membership.objects.bulk_create(
        (
            Membership(
                run=world["run"],
                photo=p,
                cluster=cluster,
                probability=(i % 100) / 100,
                centrality=i / n,
                x=i % 97,
                y=i % 89,
            )
            for i, p in enumerate(photos)
        ),
        batch_size=2000,
    )
    return cluster


def test_gallery_of_ten_thousand_members_is_one_page_of_thumbnails_in_constant_queries(
    world: dict[str, Any],
) -> None:
    client = _client(world, "moderator")
    small = world["clusters"][0]
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"/clusters/{small.pk}/").status_code == 200
    big = _big_cluster(world, 10_000)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as many:
        response = client.get(f"/clusters/{big.pk}/?order=confidence&page=3")
    seconds = time.perf_counter() - started
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('class="member') == 120 and "page 3 of 84" in body
    assert len(many) == len(few)  # no query per member
    assert seconds < 3, f"gallery page took {seconds:.2f} s"
    with CaptureQueriesContext(connection) as listing:
        assert client.get("/clusters/").status_code == 200
    assert len(listing) <= len(few) + 2
    data = client.get(f"/clusters/runs/{world['run'].pk}/map.json").json()
    assert len(data["points"]["photo"]) == 10_034


def test_older_runs_show_read_only_pages(world: dict[str, Any]) -> None:
    old = world["run"]
    run_inline()
    client = _client(world, "moderator")
    page = client.get(f"/clusters/{world['clusters'][0].pk}/").content.decode()
    assert "older run, read-only" in page and 'name="photo"' not in page
    response = client.post(f"/clusters/{world['clusters'][0].pk}/name/", {"name": "x"}, follow=True)
    assert "read-only" in response.content.decode()
    assert client.get(f"/clusters/runs/{old.pk}/").status_code == 200


def test_an_active_clustering_job_is_shown_on_the_cluster_pages(world: dict[str, Any]) -> None:
    job = jobs.job_create(Job.Kind.CLUSTER, params={"encoder": world["run"].encoder}, total=100)
    page = _client(world, "admin").get("/clusters/").content.decode()
    assert f'data-job-id="{job.pk}"' in page
    page = _client(world, "moderator").get("/clusters/").content.decode()
    assert f"job #{job.pk}" in page
