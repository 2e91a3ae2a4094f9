"""Celery tasks: thin doors that claim a job row and call one service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from flatsite.jobs import services as jobs
from search import pipeline
from search.matching import features, index
from search.models import Job


@shared_task(
    name="search.tasks.photos_process",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def photos_process(self: Task, job_id: int) -> None:
    """Normalise the photos of an ingest job (idempotent: a redelivery finds nothing to claim)."""
    # The worker's node name on the job row says which worker holds the lease.
    if jobs.job_claim(job_id, worker=self.request.hostname) is None:
        return
    pipeline.ingest_run(job_id)


@shared_task(
    name="search.tasks.features_extract", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def features_extract(job_id: int) -> None:
    """Extract features for every stored photo lacking them, then index them."""
    if jobs.job_claim(job_id) is None:
        return
    job = Job.objects.get(pk=job_id)
    if job.params.get("mode") == "all":
        features.job_operation_run(job_id)
    else:
        features.job_extract_run(job_id)


@shared_task(
    name="search.tasks.index_rebuild", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def index_rebuild(job_id: int) -> None:
    """Build a fresh index version for one encoder from the stored features."""
    if jobs.job_claim(job_id) is None:
        return
    features.job_operation_run(job_id)


@shared_task(name="search.tasks.jobs_reconcile", ignore_result=True)
def jobs_reconcile() -> dict[str, int]:
    """Periodic: requeue jobs whose worker died or whose queue message was lost."""
    return jobs.jobs_reconcile()


@shared_task(name="search.tasks.indexes_reconcile", ignore_result=True)
def indexes_reconcile() -> dict[str, dict[str, int] | str]:
    """Periodic: repair drift between live index files and the database (e.g. after a crash)."""
    return index.indexes_reconcile()


@shared_task(name="search.tasks.indexes_compact", ignore_result=True)
def indexes_compact() -> dict[str, dict[str, Any] | str]:
    """Periodic: fold delta segments and tombstones of live indexes into a new base where due."""
    return index.indexes_compact()


from search.clusters import tasks as tasks_clusters  # noqa: E402,F401  (registers the clustering tasks with Celery)
