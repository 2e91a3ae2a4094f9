"""Fault 1: workers killed with SIGKILL 20 times during a 300-photo zip lose and duplicate nothing."""

from __future__ import annotations

import io
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from flatsite.jobs import services as jobs
from search import pipeline
from search.listings import ingest
from search.models import Job, Photo
from tests.factories import ListingFactory, UserFactory
from tests.integration import faultkit
from tests.processes import Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SEED = 20240611
KILLS = 20
HEARTBEAT_TIMEOUT_S = 2  # the reconciler takes a dead worker's job over after this long
UNIQUE, COPIES, TRUNCATED, KNOWN = 280, 12, 3, 5  # 300 zip entries in all


def _zip_entries() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """The zip's entries, and the KNOWN photos already in the listing (same names and bytes)."""
    unique = faultkit.small_jpegs("room", range(UNIQUE))
    copies = [(f"copy{i:03d}.jpg", unique[i * 7][1]) for i in range(COPIES)]  # other name, same bytes
    broken = [(f"broken{i}.jpg", data[: len(data) // 2]) for i, (_, data) in enumerate(unique[-TRUNCATED:])]
    known = faultkit.small_jpegs("known", range(90_000, 90_000 + KNOWN))
    return unique + copies + broken + known, known


class _Workers:
    """The live workers; kills the one holding the job and starts a replacement."""

    def __init__(self, start_worker: Any) -> None:
        self.start_worker = start_worker
        self.live: list[Service] = []
        self.started = 0

    def start(self, wait: bool = False) -> Service:
        self.started += 1
        env = {"FLATSITE_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S)}
        worker = self.start_worker(f"killed-{self.started}", wait=wait, **env)
        self.live.append(worker)
        return worker

    def holder(self, job: Job) -> Service | None:
        return next((w for w in self.live if w.extra["node"] == job.worker and w.alive()), None)

    def kill(self, worker: Service, whole: bool) -> str:
        children = worker.children()
        if children and not whole:
            # Only the pool process dies: its master requeues the message and forks a new one.
            os.kill(children[0], signal.SIGKILL)
            return "pool process"
        worker.stop()  # SIGKILL to the worker's whole process group
        self.live.remove(worker)
        self.start()
        return "whole worker"

    def logs(self) -> str:
        return "\n".join(w.log()[-1500:] for w in self.live)


def _kill_at_random_points(job_id: int, workers: _Workers, rng: random.Random, total: int) -> list[str]:
    """Kill the job's worker KILLS times, each once progress reached a random point; returns what died.

    Every kill hits a fresh claim of the job (its attempts grew since the last kill). One kill in four
    takes the whole worker (its message stays unacknowledged in Redis, a new worker is started); the
    others kill the pool process, whose master requeues the message and forks a new one.
    """
    points = sorted(rng.sample(range(2, total - 10), KILLS))
    killed: list[str] = []
    last_reconcile, last_attempts = 0.0, 0
    for point in points:

        def reached(point: int = point, claims_before: int = last_attempts) -> Job | None:
            nonlocal last_reconcile
            if time.monotonic() - last_reconcile > 0.25:  # what celery beat does, only more often
                jobs.jobs_reconcile()
                last_reconcile = time.monotonic()
            job = Job.objects.get(pk=job_id)
            assert not job.is_final, f"job finished after {len(killed)} kills: {faultkit.job_summary(job)}"
            fresh = job.status == Job.Status.RUNNING and job.attempts > claims_before
            return job if fresh and job.done >= point and workers.holder(job) else None

        job = wait_until(reached, timeout=60, interval=0.01, what=f"progress {point} of job {job_id}")
        holder = workers.holder(job)
        assert holder is not None
        time.sleep(rng.uniform(0, 0.05))  # anywhere inside a photo's processing
        killed.append(workers.kill(holder, whole=len(killed) % 4 == 3))
        last_attempts = job.attempts
    return killed


def test_worker_killed_20_times_during_a_zip_loses_and_duplicates_nothing(
    start_worker: Any, send_tasks: str, settings: Any
) -> None:
    settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT_S
    faultkit.queue_emptied(send_tasks)
    rng = random.Random(SEED)
    listing = ListingFactory(owner=UserFactory(role="realtor"))
    entries, known = _zip_entries()
    # The KNOWN photos are already in the listing: their zip entries are exact duplicates (no new rows).
    before = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=_items(known), enqueue=False)
    assert before.job is not None
    pipeline.ingest_inline(before.job.pk)
    archive = faultkit.photo_zip(entries)
    # enqueue=False: no feature extraction is chained; this test is about the ingest job alone.
    result = ingest.photo_ingest(
        listing=listing, uploader=listing.owner, items=[("batch.zip", io.BytesIO(archive))], enqueue=False
    )
    job = result.job
    assert job is not None and len(result.outcomes) == len(entries) == 300
    statuses = defaultdict(list)
    for outcome in result.outcomes:
        statuses[outcome.status].append(outcome)
    assert len(statuses["duplicate"]) == KNOWN and all(o.photo_id for o in statuses["duplicate"])

    workers = _Workers(start_worker)
    workers.start(wait=True)
    workers.start()  # a second one boots meanwhile, as in a real deployment
    sampler = faultkit.ProgressSampler([job.pk])
    sampler.start()
    assert jobs.job_enqueue_now(job.pk, job.kind)
    killed = _kill_at_random_points(job.pk, workers, rng, job.total)
    [job] = faultkit.reconcile_until([job.pk], timeout=90, logs=workers.logs)
    samples = sampler.stop()

    assert len(killed) == KILLS
    assert job.status == Job.Status.SUCCEEDED, faultkit.job_summary(job)
    assert job.done == job.total == UNIQUE + COPIES + TRUNCATED
    assert job.attempts >= KILLS + 1  # every kill made someone claim the job again
    faultkit.assert_monotone(samples)
    _assert_nothing_lost_or_duplicated(listing, job, entries, known)


def _items(entries: list[tuple[str, bytes]]) -> list[tuple[str, io.BytesIO]]:
    return [(name, io.BytesIO(data)) for name, data in entries]


def _assert_nothing_lost_or_duplicated(
    listing: Any, job: Job, entries: list[tuple[str, bytes]], known: list[tuple[str, bytes]]
) -> None:
    photos = list(Photo.objects.filter(listing=listing))
    # The zip adds one row per entry except the exact duplicates of the KNOWN photos already there.
    assert Photo.objects.filter(job=job).count() == len(entries) - len(known)
    assert len(photos) == len(entries) - len(known) + len(known)
    names = [p.original_name for p in photos]
    assert len(names) == len(set(names)), "a photo was registered twice"
    assert {n for n, _ in entries} == set(names)
    faultkit.assert_every_photo_final(photos)
    by_status = defaultdict(list)
    for p in photos:
        by_status[p.status].append(p)
    assert len(by_status[Photo.Status.REJECTED]) == TRUNCATED
    assert all(p.original_name.startswith("broken") for p in by_status[Photo.Status.REJECTED])
    assert len(by_status[Photo.Status.PROCESSED]) == UNIQUE + KNOWN
    # Byte copies are linked to the stored photo with the same content, never stored twice.
    copies = by_status[Photo.Status.DUPLICATE]
    assert len(copies) == COPIES
    stored = {p.pk: p for p in by_status[Photo.Status.PROCESSED]}
    for copy in copies:
        original = stored[copy.duplicate_of_id]
        assert (original.sha256_bytes, original.image_path) == (copy.sha256_bytes, copy.image_path)
    assert len({p.sha256_pixels for p in stored.values()}) == len(stored)
    assert max(p.attempts for p in photos) <= settings.FLATSITE_JOB_MAX_ATTEMPTS
    assert not any("quarantined" in p.reject_reason for p in photos)
    for p in stored.values():
        assert (Path(settings.MEDIA_ROOT) / p.image_path).is_file()
    assert job.result["summary"] == {"processed": UNIQUE, "duplicate": COPIES, "rejected": TRUNCATED}
