"""Websocket consumers through the real ASGI stack: origin check, session auth, permissions, snapshots."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from flatsite.asgi import application
from flatsite.jobs import events
from flatsite.jobs import services as jobs
from search.listings import selectors
from search.models import Job, Photo
from tests.factories import ListingFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://localhost"  # in ALLOWED_HOSTS when flatsite.asgi built its origin validator


def _headers(user: Any = None, origin: bytes = ORIGIN) -> list[tuple[bytes, bytes]]:
    """Headers a browser would send: its Origin and, for a logged-in user, the session cookie."""
    headers = [(b"origin", origin)]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def _run(body: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body (no pytest-asyncio here) on a fresh in-memory channel layer."""

    async def wrapped() -> None:
        await get_channel_layer().flush()
        await body()

    async_to_sync(wrapped)()


async def _open(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, detail = await communicator.connect(timeout=5)
    return communicator, connected, detail


def _job(owner: Any, kind: str = Job.Kind.INGEST, **fields: Any) -> Job:
    return Job.objects.create(kind=kind, created_by=owner, **fields)


def _expected(job: Job) -> dict[str, Any]:
    job.refresh_from_db()
    return {**events.job_snapshot(job), "items": selectors.job_items(job)}


def test_anonymous_user_is_refused() -> None:
    job = _job(UserFactory(role="realtor"))

    async def body() -> None:
        for path, code in ((f"/ws/jobs/{job.pk}/", 4403), ("/ws/jobs/", 4401)):
            communicator, connected, detail = await _open(path, _headers())
            assert (connected, detail) == (False, code)
            await communicator.disconnect()

    _run(body)


def test_foreign_origin_is_refused_even_with_a_valid_session() -> None:
    owner = UserFactory(role="realtor")
    job = _job(owner)
    cookie = _headers(owner)[1]

    async def body() -> None:
        for origin in (b"http://evil.example", b"null"):
            communicator, connected, _ = await _open(f"/ws/jobs/{job.pk}/", [(b"origin", origin), cookie])
            assert connected is False
            await communicator.disconnect()
        communicator = WebsocketCommunicator(
            application, f"/ws/jobs/{job.pk}/", headers=[cookie]
        )  # no Origin
        connected, _ = await communicator.connect(timeout=5)
        assert connected is False

    _run(body)


def test_another_realtors_job_is_refused() -> None:
    job = _job(UserFactory(role="realtor"))
    headers = _headers(UserFactory(role="realtor"))

    async def body() -> None:
        communicator, connected, detail = await _open(f"/ws/jobs/{job.pk}/", headers)
        assert (connected, detail) == (False, 4403)
        await communicator.disconnect()

    _run(body)


def test_unknown_job_is_refused() -> None:
    headers = _headers(UserFactory(role="admin"))

    async def body() -> None:
        communicator, connected, detail = await _open("/ws/jobs/987654/", headers)
        assert (connected, detail) == (False, 4403)
        await communicator.disconnect()

    _run(body)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_allowed_user_is_accepted_and_first_gets_a_full_snapshot(role: str) -> None:
    owner = UserFactory(role="realtor")
    job = _job(owner, status=Job.Status.RUNNING, done=1, total=4, message="working")
    watcher = owner if role == "owner" else UserFactory(role="admin")
    expected = _expected(job)
    headers = _headers(watcher)

    async def body() -> None:
        communicator, connected, _ = await _open(f"/ws/jobs/{job.pk}/", headers)
        assert connected is True
        first = await communicator.receive_json_from(timeout=5)
        assert first == {"type": "snapshot", "job": expected}
        assert first["job"]["percent"] == 25
        await communicator.disconnect()

    _run(body)


def test_group_send_of_a_snapshot_reaches_the_client() -> None:
    owner = UserFactory(role="realtor")
    job = _job(owner, kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, total=10)
    headers = _headers(owner)

    async def body() -> None:
        communicator, connected, _ = await _open(f"/ws/jobs/{job.pk}/", headers)
        assert connected is True
        await communicator.receive_json_from(timeout=5)
        snapshot = {**events.job_snapshot(job), "done": 7, "percent": 70}
        await get_channel_layer().group_send(
            events.job_group(job.pk), {"type": "job.snapshot", "job": snapshot}
        )
        assert await communicator.receive_json_from(timeout=5) == {"type": "snapshot", "job": snapshot}
        await communicator.disconnect()

    _run(body)


def test_progress_published_by_the_service_reaches_job_and_list_watchers() -> None:
    owner = UserFactory(role="realtor")
    admin = UserFactory(role="admin")
    job = _job(owner, status=Job.Status.RUNNING, total=2)
    owner_headers, admin_headers = _headers(owner), _headers(admin)

    async def body() -> None:
        one, connected_one, _ = await _open(f"/ws/jobs/{job.pk}/", owner_headers)
        mine, connected_mine, _ = await _open("/ws/jobs/", owner_headers)
        everything, connected_all, _ = await _open("/ws/jobs/", admin_headers)
        assert connected_one and connected_mine and connected_all
        for communicator in (one, mine, everything):
            await communicator.receive_json_from(timeout=5)  # the snapshot on connect
        await sync_to_async(jobs.job_finish)(job.pk)
        # The ingest job's watcher gets the per-photo state read fresh from the database.
        assert (await one.receive_json_from(timeout=5))["job"] == await sync_to_async(_expected)(job)
        for communicator in (mine, everything):
            message = await communicator.receive_json_from(timeout=5)
            assert (message["job"]["id"], message["job"]["status"], message["job"]["done"]) == (
                job.pk,
                "succeeded",
                2,
            )
        for communicator in (one, mine, everything):
            await communicator.disconnect()

    _run(body)


def test_list_of_another_realtor_gets_nothing() -> None:
    owner = UserFactory(role="realtor")
    headers = _headers(UserFactory(role="realtor"))
    job = _job(owner, status=Job.Status.RUNNING, total=1)

    async def body() -> None:
        communicator, connected, _ = await _open("/ws/jobs/", headers)
        assert connected is True
        await sync_to_async(jobs.job_finish)(job.pk)
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    _run(body)


def test_reconnect_gets_a_fresh_snapshot_equal_to_the_database() -> None:
    owner = UserFactory(role="realtor")
    job = _job(owner, status=Job.Status.RUNNING, total=3)
    photo = Photo.objects.create(
        listing=ListingFactory(owner=owner),
        uploader=owner,
        job=job,
        original_name="a.jpg",
        sha256_bytes="0" * 64,
    )
    headers = _headers(owner)

    async def body() -> None:
        communicator, connected, _ = await _open(f"/ws/jobs/{job.pk}/", headers)
        assert connected is True
        before = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        # Changes while the page was away (messages it missed) ...
        await sync_to_async(jobs.job_progress)(job.pk, done=2, message="two of three")
        await sync_to_async(Photo.objects.filter(pk=photo.pk).update)(
            status=Photo.Status.REJECTED, reject_reason="not an image"
        )
        # ... are all in the first message after reconnecting.
        communicator, connected, _ = await _open(f"/ws/jobs/{job.pk}/", headers)
        assert connected is True
        after = await communicator.receive_json_from(timeout=5)
        assert after["job"] == await sync_to_async(_expected)(job)
        assert after["job"] != before["job"]
        assert (after["job"]["done"], after["job"]["message"]) == (2, "two of three")
        assert after["job"]["items"] == [
            {
                "id": photo.pk,
                "name": "a.jpg",
                "status": "rejected",
                "reason": "not an image",
                "duplicate_of": None,
            }
        ]
        await communicator.disconnect()

    _run(body)


def test_a_job_created_by_the_service_reaches_the_list_watchers_once_committed() -> None:
    owner = UserFactory(role="realtor")
    owner_headers, admin_headers = _headers(owner), _headers(UserFactory(role="admin"))

    async def body() -> None:
        mine, connected_mine, _ = await _open("/ws/jobs/", owner_headers)
        everything, connected_all, _ = await _open("/ws/jobs/", admin_headers)
        assert connected_mine and connected_all
        job = await sync_to_async(jobs.job_create)(Job.Kind.INGEST, user=owner, total=2)
        stored = await sync_to_async(lambda: events.job_snapshot(Job.objects.get(pk=job.pk)))()
        for communicator in (mine, everything):
            message = await communicator.receive_json_from(timeout=5)
            assert message["job"] == stored
            await communicator.disconnect()

    _run(body)


def test_job_list_watchers_first_get_the_newest_jobs_they_may_see_oldest_first() -> None:
    owner = UserFactory(role="realtor")
    first = _job(owner, status=Job.Status.SUCCEEDED, total=1, done=1)
    second = _job(owner, status=Job.Status.RUNNING, total=3, done=1)
    _job(UserFactory(role="realtor"))  # another realtor's job is not sent
    headers = _headers(owner)
    expected = [events.job_snapshot(Job.objects.get(pk=job.pk)) for job in (first, second)]

    async def body() -> None:
        communicator, connected, _ = await _open("/ws/jobs/", headers)
        assert connected is True
        got = [(await communicator.receive_json_from(timeout=5))["job"] for _ in expected]
        assert got == expected
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    _run(body)
