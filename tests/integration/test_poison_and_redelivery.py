"""Faults 3 and 4: a photo that kills its worker is quarantined; a redelivered long task runs once."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from flatsite.jobs import services as jobs
from search.listings import ingest
from search.models import Job, Photo
from tests.factories import ListingFactory, UserFactory
from tests.integration import faultkit
from tests.processes import Service

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

HEARTBEAT_TIMEOUT_S = 2


def _job(listing: Any, entries: list[tuple[str, bytes]]) -> Job:
    """An ingest job of the entries (no feature extraction chained), sent to the queue."""
    items = [(name, io.BytesIO(data)) for name, data in entries]
    result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=False)
    assert result.job is not None and {o.status for o in result.outcomes} == {"accepted"}
    assert jobs.job_enqueue_now(result.job.pk, result.job.kind)
    return result.job


def _listing() -> Any:
    return ListingFactory(owner=UserFactory(role="realtor"))


def test_photo_that_kills_its_worker_is_quarantined_and_other_work_finishes(
    start_worker: Any, send_tasks: str, settings: Any
) -> None:
    settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
    faultkit.queue_emptied(send_tasks)
    worker = start_worker(
        "poisoned",
        FLATSITE_JOB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT_S),
        FLATSITE_TEST_FAULTS="kill_on_photo=poison.jpg",  # decoding it SIGKILLs the worker, every time
    )
    photos = faultkit.small_jpegs("before", range(3))
    poison = ("poison.jpg", faultkit.small_jpegs("x", [999])[0][1])
    first = _job(_listing(), [*photos, poison, *faultkit.small_jpegs("after", range(100, 103))])
    second = _job(_listing(), faultkit.small_jpegs("other", range(200, 204)))

    done = faultkit.reconcile_until([first.pk, second.pk], timeout=120, logs=worker.log)

    for job in done:
        assert job.status == Job.Status.SUCCEEDED, faultkit.job_summary(job)
        assert job.done == job.total
    limit = settings.FLATSITE_JOB_MAX_ATTEMPTS
    quarantined = Photo.objects.get(job=first, original_name="poison.jpg")
    assert quarantined.status == Photo.Status.REJECTED
    assert quarantined.reject_reason.startswith(f"quarantined after {limit} attempts: ")
    assert quarantined.attempts == limit
    # It was decoded `limit` times, each delivery killed the pool process, and no more.
    assert worker.log().count("exited with 'signal 9 (SIGKILL)'") == limit
    others = Photo.objects.filter(job__in=[first, second]).exclude(pk=quarantined.pk)
    assert others.count() == 10
    assert {p.status for p in others} == {Photo.Status.PROCESSED}
    faultkit.assert_every_photo_final(list(others))
    assert done[0].attempts == limit + 1  # three claims died on the poison, the fourth quarantined it


def test_task_redelivered_after_the_visibility_timeout_has_its_effect_once(
    start_worker: Any, send_tasks: str
) -> None:
    slow = {
        "FLATSITE_BROKER_VISIBILITY_TIMEOUT": "1",  # Redis hands the message out again after 1 s
        "FLATSITE_TEST_FAULTS": "slow_photo_s=0.4",  # while the task runs for ~6 s
    }
    faultkit.queue_emptied(send_tasks)
    first = start_worker("slow-a", **slow)
    second = start_worker("slow-b", **slow)
    before = _media_files()
    n = 12
    job = _job(_listing(), faultkit.small_jpegs("slow", range(300, 300 + n)))
    sampler = faultkit.ProgressSampler([job.pk])
    sampler.start()
    [job] = faultkit.reconcile_until([job.pk], timeout=90, logs=lambda: first.log() + second.log())
    faultkit.assert_monotone(sampler.stop(), at_least=5)

    assert job.status == Job.Status.SUCCEEDED, faultkit.job_summary(job)
    holder, other = (first, second) if job.worker == first.extra["node"] else (second, first)
    assert job.worker == holder.extra["node"]
    # The message really was delivered again while the first copy ran, and the copy did nothing.
    task_id = _task_id(holder)
    assert f"photos_process[{task_id}] received" in other.log(), "the message was never redelivered"
    # Exactly one claim, one attempt per photo, one set of derivatives per photo.
    assert job.attempts == 1
    photos = list(Photo.objects.filter(job=job))
    assert len(photos) == n and {p.status for p in photos} == {Photo.Status.PROCESSED}
    assert {p.attempts for p in photos} == {1}
    referenced = {p.image_path for p in photos} | {p.thumb_path for p in photos}
    assert _media_files() - before == referenced and len(referenced) == 2 * n
    # The copy saw the live lease (not a finished job): it arrived while the first copy ran.
    assert f"job {job.pk} not claimed: held by {holder.extra['node']}" in other.log()


def _task_id(worker: Service) -> str:
    found = re.search(r"photos_process\[([0-9a-f-]+)\] received", worker.log())
    assert found is not None, worker.log()[-3000:]
    return found.group(1)


def _media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
