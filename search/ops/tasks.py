"""Celery tasks of admin operations: thin doors that claim a job row and call one service."""

from __future__ import annotations

from celery import shared_task

from flatsite.jobs import services as jobs
from search.ops import evaluation


@shared_task(
    name="search.tasks_ops.index_evaluate", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def index_evaluate(job_id: int) -> None:
    """Evaluate one index version's encoder (idempotent: a redelivery finds nothing to claim)."""
    if jobs.job_claim(job_id) is None:
        return
    evaluation.job_evaluate_run(job_id)
