"""Helpers of the fault-injection tests: progress sampling, a reconciler loop, photo batches, checks."""

from __future__ import annotations

import io
import itertools
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.db import connection

from flatsite.jobs import services as jobs
from search.models import Job, Photo
from tests import images

PROCESSED_OR_INDEXED = {Photo.Status.PROCESSED, Photo.Status.INDEXED}
SMALL = (96, 72)  # tiny photos: the tests exercise the job machinery, not the decoder


class ProgressSampler(threading.Thread):
    """Reads Job.done from the database every few milliseconds on its own connection."""

    def __init__(self, job_ids: Iterable[int], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.job_ids = list(job_ids)
        self.interval = interval
        self.samples: dict[int, list[int]] = {job_id: [] for job_id in self.job_ids}
        self.errors: list[BaseException] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                rows = Job.objects.filter(pk__in=self.job_ids).values_list("pk", "done")
                for job_id, done in rows:
                    self.samples[job_id].append(done)
                time.sleep(self.interval)
        except BaseException as exc:  # reported by stop(): a silent sampler would prove nothing
            self.errors.append(exc)
        finally:
            connection.close()

    def stop(self) -> dict[int, list[int]]:
        """Stop sampling; the samples per job (raises what the thread raised)."""
        self._stop_event.set()
        self.join(timeout=10)
        assert not self.errors, f"progress sampler failed: {self.errors!r}"
        return self.samples


def queue_emptied(redis_url: str) -> None:
    """Drop every message left in the run's Redis database (earlier tests' resends name reused job ids)."""
    redis.Redis.from_url(redis_url, socket_connect_timeout=2).flushdb()


def assert_monotone(samples: dict[int, list[int]], *, at_least: int = 10) -> None:
    """Every job's sampled progress never went down (and enough samples were taken to mean it)."""
    for job_id, values in samples.items():
        assert len(values) >= at_least, f"job {job_id}: only {len(values)} progress samples"
        drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
        assert not drops, f"job {job_id}: progress went backwards {drops[:5]}"


def reconcile_until(
    job_ids: Iterable[int],
    *,
    timeout: float,
    interval: float = 0.25,
    on_tick: Callable[[], None] | None = None,
    logs: Callable[[], str] = lambda: "",
) -> list[Job]:
    """Run the reconciler (what celery beat does, only more often) until every job is final."""
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        jobs.jobs_reconcile()
        if on_tick is not None:
            on_tick()
        current = list(Job.objects.filter(pk__in=ids).order_by("pk"))
        if all(job.is_final for job in current):
            return current
        if time.monotonic() > deadline:
            states = [(j.pk, j.status, j.done, j.total, j.attempts, j.message) for j in current]
            raise AssertionError(f"jobs not final after {timeout:.0f} s: {states}\n{logs()[-6000:]}")
        time.sleep(interval)


def photo_zip(entries: list[tuple[str, bytes]]) -> bytes:
    """A zip archive holding the given (name, bytes) entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return out.getvalue()


def small_jpegs(prefix: str, seeds: Iterable[int]) -> list[tuple[str, bytes]]:
    """(name, JPEG bytes) of tiny distinct photos."""
    return [(f"{prefix}{seed:05d}.jpg", images.jpeg(seed, SMALL, quality=80)) for seed in seeds]


def assert_every_photo_final(photos: list[Photo]) -> None:
    """Each photo is processed/indexed, a linked copy, or rejected with a reason; none in between."""
    for p in photos:
        if p.status in PROCESSED_OR_INDEXED:
            assert p.image_path and p.thumb_path and p.sha256_pixels, f"photo {p.pk} lacks derivatives"
        elif p.status == Photo.Status.DUPLICATE:
            assert p.duplicate_of_id is not None, f"photo {p.pk}: a copy without its original"
        elif p.status == Photo.Status.REJECTED:
            assert p.reject_reason, f"photo {p.pk} rejected without a reason"
        else:
            raise AssertionError(f"photo {p.pk} ({p.original_name}) left {p.status}")


def job_summary(job: Job) -> tuple[Any, ...]:
    """A compact description of a job for assertion messages."""
    return (job.pk, job.status, job.done, job.total, job.attempts, job.error, job.message)
