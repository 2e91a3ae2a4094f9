"""Moderator clustering pages: who may see and act, gallery cost at 10 000 members, actions through POSTs."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from flatsite.jobs import services as jobs
from search.models import Cluster, Job, Membership, ModeratorAction, Photo
from tests.factories import ListingFactory, UserFactory
from tests.search.clusters.fixtures import blob_photos, fake_run, run_inline

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
    ("/clusters/photos/noise/", {"run": "{run}", "photo": "{photo}", "confirmed": "yes"}),
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
        {"run": world["run"].pk, "photo": ",".join(map(str, picked)), "name": "Nook", "confirmed": "yes"},
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


def _memberships(world: dict[str, Any]) -> list[tuple[int, int | None]]:
    return sorted(Membership.objects.filter(run=world["run"]).values_list("photo_id", "cluster_id"))


def _destructive_posts(world: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Each destructive action: URL, fields, and what its confirmation page must say."""
    (a, b), run = world["clusters"], world["run"]
    n_a, n_b = (Membership.objects.filter(cluster=c).count() for c in (a, b))
    mixed = [p.pk for p in world["blobs"][0][:3]] + [p.pk for p in world["blobs"][1][:2]]
    return [
        (
            f"/clusters/{a.pk}/merge/",
            {"source": [b.pk]},
            [
                f"Cluster #{b.pk} ({n_b} photos, unreviewed) is merged into Cluster “Kitchen” "
                f"({n_a} photos, approved)",
                f"“Kitchen” then holds {n_a + n_b} photos",
            ],
        ),
        (
            f"/clusters/{a.pk}/noise/",
            {},
            [f"Cluster “Kitchen” ({n_a} photos, approved) becomes noise", "stops being the room-type tag"],
        ),
        (
            "/clusters/photos/split/",
            {"run": run.pk, "photo": ",".join(map(str, mixed)), "name": "Nook"},
            [
                f"5 photos leave 2 clusters: “Kitchen” (3 of {n_a}, approved), Cluster #{b.pk} (2 of {n_b},",
                "A new cluster “Nook” holds these 5 photos",
            ],
        ),
        (
            "/clusters/photos/noise/",
            {"run": run.pk, "photo": [str(p) for p in mixed]},
            [f"5 photos leave 2 clusters: “Kitchen” (3 of {n_a}, approved)", "They become noise"],
        ),
    ]


def test_destructive_posts_without_confirmation_change_nothing_and_say_what_would_happen(
    world: dict[str, Any],
) -> None:
    client = _client(world, "moderator")
    kitchen = world["clusters"][0]
    client.post(f"/clusters/{kitchen.pk}/name/", {"name": "Kitchen"})
    client.post(f"/clusters/{kitchen.pk}/approve/")
    before = (_memberships(world), ModeratorAction.objects.count(), list(Cluster.objects.values()))
    for url, data, sentences in _destructive_posts(world):
        response = client.post(url, data)
        page = response.content.decode()
        assert response.status_code == 200 and 'data-testid="confirm"' in page, url
        for sentence in sentences:
            assert html.escape(sentence, quote=False) in page, (url, sentence, page)
        assert '<input type="hidden" name="confirmed" value="yes">' in page
        assert (
            _memberships(world),
            ModeratorAction.objects.count(),
            list(Cluster.objects.values()),
        ) == before


def test_the_confirmation_page_reposts_the_same_fields_to_the_same_url(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    picked = [p.pk for p in world["blobs"][0][:3]]
    data = {"run": world["run"].pk, "photo": ",".join(map(str, picked)), "name": "Nook", "next": "/clusters/"}
    page = client.post("/clusters/photos/split/", data).content.decode()
    assert 'action="/clusters/photos/split/"' in page
    for key, value in data.items():
        assert f'<input type="hidden" name="{key}" value="{value}">' in page
    assert page.count("/thumb.jpg") == 3
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    assert fields.pop("confirmed") == "yes"
    response = client.post("/clusters/photos/split/", {**fields, "confirmed": "yes"})
    assert response.status_code == 302 and response["Location"] == "/clusters/"
    new = Cluster.objects.get(run=world["run"], name="Nook")
    assert set(Membership.objects.filter(cluster=new).values_list("photo_id", flat=True)) == set(picked)


def test_confirmed_destructive_posts_carry_out_the_action(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    (a, b), run = world["clusters"], world["run"]
    client.post(f"/clusters/{a.pk}/merge/", {"source": [b.pk], "confirmed": "yes"})
    b.refresh_from_db()
    assert b.state == Cluster.State.MERGED
    photo = world["blobs"][0][0].pk
    client.post("/clusters/photos/noise/", {"run": run.pk, "photo": photo, "confirmed": "yes"})
    assert Membership.objects.get(run=run, photo_id=photo).cluster_id is None
    client.post(f"/clusters/{a.pk}/noise/", {"confirmed": "yes"})
    a.refresh_from_db()
    assert a.state == Cluster.State.NOISE
    assert not Membership.objects.filter(run=run, cluster__isnull=False).exists()


def test_unconfirmed_posts_with_bad_input_report_the_error_instead_of_asking(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    (a, b), run = world["clusters"], world["run"]
    noise_photo = world["blobs"][0][0].pk
    client.post("/clusters/photos/noise/", {"run": run.pk, "photo": noise_photo, "confirmed": "yes"})
    cases = [
        ("/clusters/photos/split/", {"run": run.pk, "photo": ""}, "select at least one photo"),
        ("/clusters/photos/split/", {"run": run.pk, "photo": "1,abc"}, "not a photo or cluster id"),
        ("/clusters/photos/noise/", {"run": run.pk, "photo": noise_photo}, "already noise"),
        (f"/clusters/{a.pk}/merge/", {"source": [a.pk]}, "at least one other"),
        (f"/clusters/{a.pk}/merge/", {"source": [999_999]}, "no such cluster"),
        ("/clusters/999999/noise/", {}, "no such cluster"),
    ]
    for url, data, error in cases:
        page = client.post(url, data, follow=True).content.decode()
        assert error in page and 'data-testid="confirm"' not in page, (url, error)
    run_inline()  # the world's run is older now: nothing to confirm there
    page = client.post(f"/clusters/{b.pk}/noise/", {}, follow=True).content.decode()
    assert "read-only" in page and 'data-testid="confirm"' not in page


def test_the_undo_button_names_the_action_it_undoes_and_a_second_click_undoes_nothing_more(
    world: dict[str, Any],
) -> None:
    client = _client(world, "moderator")
    (a, b), run = world["clusters"], world["run"]
    client.post(f"/clusters/{a.pk}/name/", {"name": "Kitchen"})
    photo = world["blobs"][0][1].pk
    client.post("/clusters/photos/move/", {"run": run.pk, "photo": photo, "target": b.pk})
    page = client.get(f"/clusters/{a.pk}/").content.decode()
    move = ModeratorAction.objects.get(kind="move")
    assert "Undo: Moved 1 photo into" in page and f'name="action" value="{move.pk}"' in page
    for _click in range(2):  # a double click posts the same form twice
        response = client.post("/clusters/undo/", {"run": run.pk, "action": move.pk}, follow=True)
    assert "already undone; nothing else was undone" in response.content.decode()
    a.refresh_from_db()
    assert a.name == "Kitchen" and Membership.objects.get(run=run, photo_id=photo).cluster_id == a.pk
    assert "Undo: Named Cluster #" in client.get(f"/clusters/{a.pk}/").content.decode()


def test_history_marks_undone_actions_and_the_next_one_to_undo(world: dict[str, Any]) -> None:
    client = _client(world, "moderator")
    (a, b), run = world["clusters"], world["run"]
    client.post(f"/clusters/{a.pk}/name/", {"name": "Kitchen"})
    client.post(f"/clusters/{b.pk}/name/", {"name": "Hall"})
    client.post("/clusters/undo/", {"run": run.pk})
    named_a, named_b, undo = run.actions.order_by("id")
    page = client.get(f"/clusters/runs/{run.pk}/history/").content.decode()
    assert f'data-action="{named_b.pk}" data-undone="{undo.pk}"' in page
    assert f"reverted #{named_b.pk}" in page
    row_a = page[page.index(f'data-action="{named_a.pk}"') :]
    assert "next to undo" in row_a[: row_a.index("</tr>")]
