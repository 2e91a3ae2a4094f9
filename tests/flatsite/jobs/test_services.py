"""Job lifecycle: claim once, monotone progress, cancel, and recovery of dead workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from flatsite.jobs import services as jobs
from search.models import Job
from tests.flatsite.jobs.sending import task_send_replace

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.INGEST, calls.append)
    return calls


def _past_heartbeat_timeout(settings: Any) -> datetime:
    """A moment just beyond the heartbeat timeout: a worker last heard from then counts as dead."""
    return timezone.now() - timedelta(seconds=settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT + 5)


def _died_on_last_attempt(job: Job, settings: Any) -> None:
    """Make job a running one whose worker died on its last allowed attempt, with no progress since."""
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        heartbeat_at=_past_heartbeat_timeout(settings),
        attempts=settings.FLATSITE_JOB_MAX_ATTEMPTS,
        stalled_attempts=settings.FLATSITE_JOB_MAX_ATTEMPTS,
    )


def test_a_job_is_claimed_only_once() -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=3)
    assert jobs.job_claim(job.pk) is not None
    assert jobs.job_claim(job.pk) is None
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_progress_never_goes_backwards_and_never_exceeds_total() -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=5)
    jobs.job_claim(job.pk)
    assert jobs.job_progress(job.pk, done=3).done == 3
    assert jobs.job_progress(job.pk, done=2).done == 3
    assert jobs.job_progress(job.pk, done=9).done == 5


def test_cancel_stops_a_queued_job_at_once() -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    assert jobs.job_cancel(job.pk).status == Job.Status.CANCELLED
    assert jobs.job_claim(job.pk) is None


def test_reconciler_requeues_a_job_whose_worker_stopped_heartbeating(sent: list[int], settings: Any) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    jobs.job_claim(job.pk)
    old = _past_heartbeat_timeout(settings)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    assert jobs.jobs_reconcile()["requeued"] == 1
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    assert sent == [job.pk]
    assert jobs.job_claim(job.pk) is not None


def test_reconciler_fails_a_job_out_of_attempts_instead_of_leaving_it_running(
    sent: list[int], settings: Any
) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    _died_on_last_attempt(job, settings)
    assert jobs.jobs_reconcile()["failed"] == 1
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "giving up" in job.error
    assert sent == []


def test_a_broker_outage_leaves_the_job_queued_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(job_id: int) -> None:
        raise ConnectionError("redis down")

    task_send_replace(monkeypatch, Job.Kind.INGEST, down)
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    assert jobs.job_enqueue_now(job.pk, job.kind) is False
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and "queue unavailable" in job.message


def test_queued_jobs_older_than_the_timeout_are_sent_again(sent: list[int], settings: Any) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    Job.objects.filter(pk=job.pk).update(created_at=_past_heartbeat_timeout(settings))
    assert jobs.jobs_reconcile()["resent"] == 1
    assert sent == [job.pk]


def test_photos_of_an_abandoned_ingest_job_get_a_final_state(
    sent: list[int], settings: Any, listing: Any
) -> None:
    from search.models import Photo

    job = jobs.job_create(Job.Kind.INGEST, total=1)
    photo = Photo.objects.create(
        listing=listing, uploader=listing.owner, original_name="a.jpg", sha256_bytes="0" * 64, job=job
    )
    _died_on_last_attempt(job, settings)
    jobs.jobs_reconcile()
    photo.refresh_from_db()
    assert photo.status == Photo.Status.REJECTED
    assert "giving up" in photo.reject_reason


def test_a_job_that_progresses_between_worker_deaths_is_never_abandoned(
    sent: list[int], settings: Any
) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=50)
    old = _past_heartbeat_timeout(settings)
    for step in range(1, 3 * settings.FLATSITE_JOB_MAX_ATTEMPTS):
        assert jobs.job_claim(job.pk) is not None
        jobs.job_progress(job.pk, done=step)  # moved forward, then its worker died
        Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
        assert jobs.jobs_reconcile()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.attempts > settings.FLATSITE_JOB_MAX_ATTEMPTS


def test_a_job_whose_workers_die_without_progress_is_abandoned(sent: list[int], settings: Any) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=5)
    old = _past_heartbeat_timeout(settings)
    jobs.job_claim(job.pk)
    jobs.job_progress(job.pk, done=2)
    for _ in range(settings.FLATSITE_JOB_MAX_ATTEMPTS):
        Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
        jobs.jobs_reconcile()
        jobs.job_claim(job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    assert jobs.jobs_reconcile()["failed"] == 1
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "without progress; giving up" in job.error


def test_a_started_item_counts_as_progress(settings: Any) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=5)
    jobs.job_claim(job.pk)
    jobs.job_claim(job.pk)  # not claimable: the lease is live
    assert Job.objects.get(pk=job.pk).stalled_attempts == 1
    jobs.job_advanced(job.pk)
    assert Job.objects.get(pk=job.pk).stalled_attempts == 0


def test_a_queued_job_is_resent_at_most_once_per_heartbeat_timeout(sent: list[int], settings: Any) -> None:
    job = jobs.job_create(Job.Kind.INGEST, total=1)
    Job.objects.filter(pk=job.pk).update(created_at=_past_heartbeat_timeout(settings))
    assert jobs.jobs_reconcile()["resent"] == 1
    assert jobs.jobs_reconcile()["resent"] == 0  # waiting behind other work is not being lost
    assert sent == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_job_enqueue_reports_a_broker_outage_once_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import transaction
    from kombu.exceptions import OperationalError

    def down(job_id: int) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    task_send_replace(monkeypatch, Job.Kind.INGEST, down)
    with transaction.atomic():
        job = jobs.job_create(Job.Kind.INGEST, total=1)
        outcome = jobs.job_enqueue(job)
        assert outcome.sent is None  # not sent before the commit
    assert outcome.sent is False
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


@pytest.mark.parametrize(
    ("kind", "gpu_queue", "task", "queue"),
    [
        (Job.Kind.INGEST, True, "search.tasks.photos_process", None),
        (Job.Kind.CLUSTER, True, "search.tasks_clusters.clustering_run", None),
        (Job.Kind.EXTRACT, True, "search.tasks.features_extract", "gpu"),
        (Job.Kind.EXTRACT, False, "search.tasks.features_extract", "default"),
        (Job.Kind.TRAIN, True, "training.tasks.training_job_run", "gpu"),
    ],
)
def test_each_kind_is_sent_to_its_declared_task_and_queue(
    kind: str, gpu_queue: bool, task: str, queue: str | None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import celery

    settings.FLATSITE_GPU_QUEUE = gpu_queue
    sent: list[tuple[Any, dict[str, Any]]] = []
    registered = celery.current_app.tasks[task]
    monkeypatch.setattr(registered, "apply_async", lambda args, **kw: sent.append((args, kw)))
    jobs.task_send(kind, 9)
    assert sent == [((9,), {"queue": queue})]


def test_a_kind_without_a_route_stays_queued_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(jobs, "task_send", lambda kind, job_id: calls.append((kind, job_id)))
    job = jobs.job_create("unknown", total=1)
    assert jobs.job_enqueue_now(job.pk, "unknown") is False
    assert calls == [] and Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
