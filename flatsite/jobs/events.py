"""Live progress: push full job snapshots to the channel layer (may drop messages: pages resync)."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from flatsite.jobs.models import Job

log = logging.getLogger(__name__)
_last_sent: dict[int, float] = {}
MIN_INTERVAL_S = 0.25


def job_group(job_id: int) -> str:
    """Channel group of one job."""
    return f"search-job-{job_id}"


def jobs_group(user_id: int | None) -> str:
    """Channel group of one user's job list (None: every job, for admins)."""
    return "search-jobs-all" if user_id is None else f"search-jobs-user-{user_id}"


def job_snapshot(job: Job) -> dict[str, Any]:
    """Everything a page needs to draw a job, so any message alone resyncs it."""
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "percent": job.percent,
        "message": job.message,
        "error": job.error,
        "result": job.result,
        "created_by": job.created_by_id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
        "is_final": job.is_final,
    }


def job_created(job_id: int) -> None:
    """Announce a new job to its watchers and the job lists, as stored (called once its row commits)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is not None:
        job_changed(job, force=True)


def job_changed(job: Job, *, force: bool = False) -> None:
    """Send a job's snapshot to its watchers, throttled unless forced or final."""
    now = time.monotonic()
    if not force and not job.is_final and now - _last_sent.get(job.pk, 0.0) < MIN_INTERVAL_S:
        return
    if job.is_final:
        # Nothing is throttled after the final snapshot: forgetting the job keeps this map as small as the
        # jobs still running, in processes that publish for every job they ever ran (workers, web).
        _last_sent.pop(job.pk, None)
    else:
        _last_sent[job.pk] = now
    message = {"type": "job.snapshot", "job": job_snapshot(job)}
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in (job_group(job.pk), jobs_group(job.created_by_id), jobs_group(None)):
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # the channel layer is best effort: the database stays the truth
        log.warning("could not publish progress of job %s", job.pk, exc_info=True)
