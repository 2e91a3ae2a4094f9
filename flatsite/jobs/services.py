"""Jobs: create, claim, heartbeat, progress, finish, cancel, and recover from dead workers."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import celery
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from flatsite.jobs import events, hooks, routes
from flatsite.jobs.models import Job

log = logging.getLogger(__name__)


def job_create(kind: str, *, user: Any = None, params: dict[str, Any] | None = None, total: int = 0) -> Job:
    """Create a queued job; the caller enqueues it on commit."""
    job = Job.objects.create(kind=kind, created_by=user, params=params or {}, total=total)
    # Job lists add the row live; sent after commit so a page that follows the link finds the job.
    transaction.on_commit(lambda: events.job_created(job.pk))
    return job


@dataclass
class Enqueued:
    """Whether a job's task reached the queue: None until the surrounding transaction commits."""

    sent: bool | None = None


def job_enqueue(job: Job) -> Enqueued:
    """Put the job's task on the queue once the surrounding transaction commits."""
    job_id, kind = job.pk, job.kind
    outcome = Enqueued()

    def send() -> None:
        outcome.sent = job_enqueue_now(job_id, kind)

    transaction.on_commit(send)
    return outcome


def task_send(kind: str, job_id: int) -> None:
    """Put a kind's task for one job on its queue (the one seam tests replace to send nothing)."""
    task = celery.current_app.tasks[routes.TASKS[kind]]
    task.apply_async((job_id,), queue=routes.job_queue(kind))


def job_enqueue_now(job_id: int, kind: str) -> bool:
    """Send the task now; a broker outage leaves the job queued for the reconciler."""
    if kind not in routes.TASKS:
        log.error("no task registered for job kind %s", kind)
        return False
    try:
        task_send(kind, job_id)
    except Exception as exc:  # broker down: the job row is safe, the reconciler re-sends it
        log.warning("queue unavailable for job %s: %s", job_id, exc)
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            message="queue unavailable; the job will start when the queue is back"
        )
        return False
    Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(sent_at=timezone.now())
    return True


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT)


def job_claim(job_id: int, worker: str | None = None) -> Job | None:
    """Atomically take a queued (or abandoned) job; None when someone else holds it or it is done."""
    now = timezone.now()
    claimable = Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, heartbeat_at__lt=_stale_before())
    updated = (
        Job.objects.filter(claimable, pk=job_id)
        .filter(cancel_requested=False)
        .update(
            status=Job.Status.RUNNING,
            heartbeat_at=now,
            started_at=now,
            attempts=F("attempts") + 1,
            stalled_attempts=F("stalled_attempts") + 1,
            worker=worker or socket.gethostname(),
            message="",
        )
    )
    if not updated:
        _cancel_if_requested(job_id)
        log.info("job %s not claimed: %s", job_id, _claim_refused_because(job_id))
        return None
    job = Job.objects.get(pk=job_id)
    events.job_changed(job, force=True)
    return job


def _claim_refused_because(job_id: int) -> str:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return "no such job"
    if job.status == Job.Status.RUNNING:
        return f"held by {job.worker} (lease live, heartbeat at {job.heartbeat_at})"
    return f"it is {job.status}" + (" (cancel requested)" if job.cancel_requested else "")


def _cancel_if_requested(job_id: int) -> None:
    cancelled = Job.objects.filter(pk=job_id, cancel_requested=True, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now(), message="cancelled before it started"
    )
    if cancelled:
        events.job_changed(Job.objects.get(pk=job_id), force=True)


def job_progress(job_id: int, *, done: int, total: int | None = None, message: str | None = None) -> Job:
    """Record progress and heartbeat; progress never goes backwards."""
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if message is not None:
        fields["message"] = message[:500]
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if total is not None:
            job.total = max(total, job.done)
        before = job.done
        job.done = min(max(job.done, done), job.total)
        if job.done > before:
            fields["stalled_attempts"] = 0
        for key, value in fields.items():
            setattr(job, key, value)
        job.save(update_fields=["done", "total", *fields])
    events.job_changed(job)
    return job


def job_advanced(job_id: int) -> None:
    """Record that a running job moved forward without finishing an item (e.g. started a new one)."""
    # Filtered on a non-zero count: the common case writes nothing (a commit costs a disk sync).
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, stalled_attempts__gt=0).update(
        heartbeat_at=timezone.now(), stalled_attempts=0
    )


def job_heartbeat(job_id: int) -> None:
    """Tell the reconciler this job's worker is alive."""
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())


def job_should_stop(job_id: int) -> bool:
    """Whether a cancel was requested (checked by long loops)."""
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def job_finish(
    job_id: int, *, status: str = Job.Status.SUCCEEDED, result: dict[str, Any] | None = None, error: str = ""
) -> Job:
    """Move a job to a final state with its result."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        job.status = status
        job.finished_at = timezone.now()
        job.error = error
        if result is not None:
            job.result = {**job.result, **result}
        if status == Job.Status.SUCCEEDED:
            job.done = job.total
        job.save()
    events.job_changed(job, force=True)
    return job


def job_cancel(job_id: int) -> Job:
    """Ask a job to stop; a queued job stops at once, a running one at its next check."""
    Job.objects.filter(pk=job_id).exclude(status__in=Job.FINAL_STATES).update(cancel_requested=True)
    _cancel_if_requested(job_id)
    job = Job.objects.get(pk=job_id)
    events.job_changed(job, force=True)
    return job


def _abandon(job: Job) -> None:
    error = f"worker died {job.stalled_attempts} times without progress; giving up"
    with transaction.atomic():
        hooks.job_abandoned(job, error)  # the domain's cleanup (e.g. the batch's photos) commits with it
        job_finish(job.pk, status=Job.Status.FAILED, error=error)


def jobs_reconcile() -> dict[str, int]:
    """Requeue jobs whose worker died or whose message was lost; fail those that stopped progressing."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stale = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=_stale_before())
    for job in stale:
        if job.stalled_attempts >= settings.FLATSITE_JOB_MAX_ATTEMPTS:
            _abandon(job)
            counts["failed"] += 1
            continue
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=Job.Status.QUEUED, message="worker stopped responding; requeued"
        ):
            counts["requeued"] += 1
            job_enqueue_now(job.pk, job.kind)
    # Queued jobs whose message may have been dropped by a broker outage are sent again;
    # claiming is idempotent, so a duplicate message does nothing.
    cutoff = _stale_before()
    not_sent_lately = Q(sent_at__isnull=True) | Q(sent_at__lt=cutoff)
    lost = Job.objects.filter(not_sent_lately, status=Job.Status.QUEUED, created_at__lt=cutoff)
    for job in lost:
        counts["resent"] += int(job_enqueue_now(job.pk, job.kind))
    return counts
