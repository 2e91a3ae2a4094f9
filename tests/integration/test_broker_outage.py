"""Fault 2: Redis dies (losing every message) and stays down during a 1 000-photo import: nothing lost."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from flatsite.jobs import services as jobs
from search.listings import ingest
from search.models import Job, Photo
from tests import processes
from tests.factories import ListingFactory, UserFactory
from tests.integration import faultkit
from tests.processes import Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(360)]

HEARTBEAT_TIMEOUT_S = 2
BATCH = 100
BEFORE, DURING = 4, 4  # service batches sent before and during the outage; the web adds two during it
TOTAL = (BEFORE + DURING + 2) * BATCH
DOWN_FOR_S = 8.0


@pytest.fixture
def private_redis(process_logs: Path) -> Iterator[dict[str, Any]]:
    """A redis-server of this test alone, which the test kills and restarts on the same port."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program")
    port = processes.free_port()
    state: dict[str, Any] = {"server": processes.redis_server(port, process_logs), "port": port}
    try:
        yield state
    finally:
        state["server"].stop()


def _batch(first_seed: int) -> list[tuple[str, bytes]]:
    return faultkit.small_jpegs(f"b{first_seed}-", range(first_seed, first_seed + BATCH))


def _service_job(listing: Any, entries: list[tuple[str, bytes]]) -> ingest.IngestResult:
    """Register a batch and send its job (no feature extraction chained)."""
    items = [(name, io.BytesIO(data)) for name, data in entries]
    result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=False)
    assert result.job is not None
    result.enqueued = jobs.Enqueued(sent=jobs.job_enqueue_now(result.job.pk, result.job.kind))
    return result


def _web_uploads_while_down(listing: Any) -> list[int]:
    """The JSON API and the upload page each get a batch; both say the photos are saved, neither 500s."""
    token = Token.objects.create(user=listing.owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    archive = faultkit.photo_zip(_batch(50_000))
    zipped = SimpleUploadedFile("batch.zip", archive, content_type="application/zip")
    response = api.post(f"/api/listings/{listing.pk}/photos/", {"files": [zipped]}, format="multipart")
    assert response.status_code == 503, response.content[:500]
    body = response.json()
    assert body["error"] == ingest.QUEUE_UNAVAILABLE
    assert "saved" in body["error"] and "processed when it is back" in body["error"]
    assert [o["status"] for o in body["detail"]["outcomes"]] == ["accepted"] * BATCH

    page = Client()
    page.force_login(listing.owner)
    files = [SimpleUploadedFile(n, d, content_type="image/jpeg") for n, d in _batch(60_000)]
    html = page.post(reverse("listings:upload", args=[listing.pk]), {"files": files}, follow=True)
    assert html.status_code == 200
    text = html.content.decode()
    assert 'id="queue-unavailable"' in text and "your photos are saved" in text
    web_jobs = Job.objects.filter(kind=Job.Kind.INGEST, created_by=listing.owner).order_by("-pk")[:1]
    return [body["detail"]["job"], web_jobs[0].pk]


def test_redis_down_during_an_import_loses_nothing_and_the_web_says_so(
    start_worker: Any, private_redis: dict[str, Any], process_logs: Path, settings: Any
) -> None:
    settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
    settings.FLATSITE_GPU_QUEUE = True  # feature extraction queued by web uploads waits on an unserved queue
    url = private_redis["server"].extra["url"]
    env = {"REDIS_URL": url, "CELERY_BROKER_URL": url, "CHANNEL_REDIS_URL": url}
    env |= {"FLATSITE_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S), "FLATSITE_GPU_QUEUE": "1"}
    listing = ListingFactory(owner=UserFactory(role="realtor"))
    with processes.tasks_sent_to(url):
        worker = start_worker("outage", queues="default", **env)
        sent = [_service_job(listing, _batch(i * BATCH)) for i in range(BEFORE)]
        assert all(r.enqueued and r.enqueued.sent for r in sent)
        wait_until(lambda: Job.objects.filter(pk=sent[0].job.pk, done__gte=20).exists(), timeout=60)

        private_redis["server"].stop()  # SIGKILL: queued and unacknowledged messages are gone
        down_since = time.monotonic()
        web = _web_uploads_while_down(listing)
        during = [_service_job(listing, _batch(10_000 + i * BATCH)) for i in range(DURING)]
        assert all(r.queue_unavailable for r in during)
        assert all("queue unavailable" in Job.objects.get(pk=r.job.pk).message for r in during)
        time.sleep(max(0.0, DOWN_FOR_S - (time.monotonic() - down_since)))
        private_redis["server"] = processes.redis_server(private_redis["port"], process_logs)

        job_ids = [r.job.pk for r in sent + during if r.job] + web
        done = faultkit.reconcile_until(job_ids, timeout=240, logs=lambda: worker.log())
    _assert_nothing_lost(listing, done, worker)


def _assert_nothing_lost(listing: Any, done: list[Job], worker: Service) -> None:
    for job in done:
        assert job.status == Job.Status.SUCCEEDED, faultkit.job_summary(job)
        assert job.done == job.total == BATCH
    photos = list(Photo.objects.filter(listing=listing))
    assert len(photos) == TOTAL
    assert len({p.original_name for p in photos}) == TOTAL
    assert {p.status for p in photos} == {Photo.Status.PROCESSED}
    faultkit.assert_every_photo_final(photos)
    assert "Connection to broker lost" in worker.log()  # the worker did live through the outage
