"""Celery tasks of the training app: thin doors that claim a job row and run it."""

from __future__ import annotations

from celery import shared_task

from flatsite.jobs import services as jobs


@shared_task(
    name="training.tasks.training_job_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def training_job_run(job_id: int) -> None:
    """Train a run (from its latest checkpoint, so a redelivered job resumes) or index with its encoder."""
    if jobs.job_claim(job_id) is None:
        return
    from training import job as runner  # torch and the GAN load only in processes that train

    runner.job_run(job_id, worker=True)  # worker: thread limit, no DataLoader processes in a daemon
