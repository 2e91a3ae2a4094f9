"""A real Celery worker and Redis: ingest jobs finish, dead workers' jobs are recovered, nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from flatsite.jobs import services as jobs
from search.listings import ingest
from search.listings.tasks import photos_process
from search.models import Job, Photo
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory, UserFactory
from tests.processes import Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

HEARTBEAT_TIMEOUT_S = 4  # small, so the reconciler may take over a killed worker's job quickly
# Feature extraction, queued after each ingest job, moves processed photos on to "indexed".
PROCESSED_OR_INDEXED = {Photo.Status.PROCESSED, Photo.Status.INDEXED}


def _listing() -> Any:
    return ListingFactory(owner=UserFactory(role="realtor"))


def _ingest(listing: Any, n: int, *, enqueue: bool, size: tuple[int, int] = (320, 240)) -> Job:
    items = [upload(f"room{i}.jpg", images.jpeg(1000 + i, size)) for i in range(n)]
    result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=enqueue)
    assert result.job is not None and [o.status for o in result.outcomes] == ["accepted"] * n
    return result.job


def _final(job_id: int, worker: Service | None = None, timeout: float = 45) -> Job:
    def finished() -> Job | None:
        job = Job.objects.get(pk=job_id)
        return job if job.is_final else None

    try:
        return wait_until(finished, timeout=timeout, interval=0.1, what=f"job {job_id} to finish")
    except TimeoutError as exc:
        log = worker.log()[-4000:] if worker else ""
        raise AssertionError(f"{exc}; job: {Job.objects.get(pk=job_id).__dict__}\n{log}") from exc


def _make_stale(job: Job, *, attempts: int) -> None:
    """The row a worker leaves behind when it dies mid-job: running, old heartbeat, photos unprocessed."""
    long_ago = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        heartbeat_at=long_ago,
        started_at=long_ago,
        attempts=attempts,
        stalled_attempts=attempts,
        worker="dead-host",
    )


def _media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _kill_pool_child_mid_batch(worker: Service, job_id: int, samples: list[int], at: int) -> int:
    """Wait until `at` photos are done, SIGKILL the worker's pool process; returns done at the kill."""

    def progressed() -> bool:
        job = Job.objects.get(pk=job_id)
        samples.append(job.done)
        assert not job.is_final, f"job finished before the kill ({job.status}); use more or bigger photos"
        return job.done >= at

    wait_until(progressed, timeout=60, interval=0.05, what=f"{at} photos of job {job_id}")
    children = worker.children()
    assert len(children) == 1, f"expected one prefork child, found {children}"
    os.kill(children[0], signal.SIGKILL)
    return samples[-1]


class TestWithAWorker:
    """Share one worker: each start costs seconds (it imports torch)."""

    worker_env = {"FLATSITE_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S)}

    def test_uploaded_photos_are_processed_by_the_worker(self, worker: Service, send_tasks: str) -> None:
        job = _ingest(_listing(), 3, enqueue=True)
        job = _final(job.pk, worker)
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert (job.done, job.total, job.attempts) == (3, 3, 1)
        assert job.worker and job.worker != "inline"
        assert job.result["summary"] == {"processed": 3}
        photos = list(Photo.objects.filter(job=job))
        assert len(photos) == 3 and all(p.status in PROCESSED_OR_INDEXED for p in photos)
        for photo in photos:  # written by the worker into the folder this test reads
            assert (Path(settings.MEDIA_ROOT) / photo.image_path).is_file()
            assert (Path(settings.MEDIA_ROOT) / photo.thumb_path).is_file()
        # The ingest job queued feature extraction; the same worker runs it to the end.
        extract = wait_until(
            lambda: Job.objects.filter(kind=Job.Kind.EXTRACT).first(), timeout=10, what="the extract job"
        )
        assert _final(extract.pk, worker, timeout=90).status == Job.Status.SUCCEEDED, extract.error
        assert set(Photo.objects.filter(job=job).values_list("status", flat=True)) == {Photo.Status.INDEXED}

    def test_worker_and_its_pool_run_below_the_web_process_priority(self, worker: Service) -> None:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        pids = [worker.proc.pid, *worker.children()]
        assert len(pids) >= 2  # the master and its prefork pool child
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {
            min(19, own + settings.FLATSITE_WORKER_NICE)
        }

    def test_job_of_a_dead_worker_is_requeued_and_finished(
        self, worker: Service, send_tasks: str, settings: Any
    ) -> None:
        settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
        job = _ingest(_listing(), 2, enqueue=False)
        _make_stale(job, attempts=1)
        counts = jobs.jobs_reconcile()
        assert counts["requeued"] == 1
        job = _final(job.pk, worker)
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert (job.done, job.total, job.attempts) == (2, 2, 2)
        assert job.worker != "dead-host"
        assert set(Photo.objects.filter(job=job).values_list("status", flat=True)) == {Photo.Status.PROCESSED}

    def test_queued_job_whose_message_was_lost_is_sent_again(
        self, worker: Service, send_tasks: str, settings: Any
    ) -> None:
        settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
        job = _ingest(_listing(), 1, enqueue=False)  # a queued row without a queue message
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
        assert jobs.jobs_reconcile()["resent"] == 1
        job = _final(job.pk, worker)
        assert (job.status, job.done, job.total) == (Job.Status.SUCCEEDED, 1, 1)

    def test_job_out_of_attempts_is_failed_and_stays_failed(
        self, worker: Service, send_tasks: str, settings: Any
    ) -> None:
        settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
        job = _ingest(_listing(), 2, enqueue=False)
        _make_stale(job, attempts=settings.FLATSITE_JOB_MAX_ATTEMPTS)
        assert jobs.jobs_reconcile() == {"requeued": 0, "failed": 1, "resent": 0}
        job.refresh_from_db()
        assert job.status == Job.Status.FAILED and "giving up" in job.error
        # A late redelivery of the old message must not revive it.
        sent = photos_process.delay(job.pk)
        wait_until(lambda: f"[{sent.id}] succeeded" in worker.log(), timeout=30, what="the late message")
        job.refresh_from_db()
        assert job.status == Job.Status.FAILED and job.attempts == settings.FLATSITE_JOB_MAX_ATTEMPTS
        assert jobs.jobs_reconcile() == {"requeued": 0, "failed": 0, "resent": 0}

    def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
        self, worker: Service, start_worker: Any, send_tasks: str, settings: Any
    ) -> None:
        settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
        first = worker  # its pool process dies; its master forks a new one and a second worker joins
        before = _media_files()
        n = 40
        listing = _listing()
        job = _ingest(listing, n, enqueue=True, size=(1024, 768))
        samples: list[int] = []
        done_at_kill = _kill_pool_child_mid_batch(first, job.pk, samples, at=5)
        second = start_worker("worker-b", wait=False, FLATSITE_JOB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT_S))
        deadline = time.monotonic() + 90
        while True:  # what celery beat does in production, only more often
            jobs.jobs_reconcile()
            current = Job.objects.get(pk=job.pk)
            samples.append(current.done)
            if current.is_final or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert current.status == Job.Status.SUCCEEDED, (
            f"{current.__dict__}\n{first.log()[-3000:]}\n{second.log()[-3000:]}"
        )
        assert 0 < done_at_kill < n
        assert current.attempts >= 2  # the reconciler (or a redelivery) took the job over
        assert samples == sorted(samples), "progress went backwards"
        assert (current.done, current.total) == (n, n)

        photos = list(Photo.objects.filter(listing=listing))
        assert len(photos) == n  # no photo lost, no row added twice
        assert {p.status for p in photos} <= PROCESSED_OR_INDEXED
        assert max(p.attempts for p in photos) <= 2  # only the photo in flight at the kill was redone
        referenced = {p.image_path for p in photos} | {p.thumb_path for p in photos}
        assert len(referenced) == 2 * n
        assert all((Path(settings.MEDIA_ROOT) / rel).is_file() for rel in referenced)
        # The killed process may have written the derivatives of the photo it held before dying.
        orphans = _media_files() - before - referenced
        assert len(orphans) <= 2, sorted(orphans)
        assert current.result["summary"] == {"processed": n}
