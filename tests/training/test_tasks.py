"""The training task: queue routing, and a killed worker's run resuming from its last checkpoint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from flatsite.jobs import services as jobs
from search.models import Job
from tests.training.test_job import hook_train
from training import job as runner
from training import services, tasks
from training.ml import StepStats
from training.ml import train as real_train
from training.models import TrainingMetric

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the task may catch it, so the job is left running."""


@pytest.mark.parametrize(("gpu_queue", "queue"), [(True, "gpu"), (False, "default")])
def test_training_goes_to_the_gpu_queue_only_when_gpu_workers_exist(
    gpu_queue: bool, queue: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLATSITE_GPU_QUEUE = gpu_queue
    sent: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(tasks.training_job_run, "apply_async", lambda args, **kw: sent.append((args, kw)))
    jobs.task_send(Job.Kind.TRAIN, 41)
    assert sent == [((41,), {"queue": queue})]


def test_killed_worker_run_is_requeued_and_resumes_from_its_last_checkpoint(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)
    assert run.job_id is not None

    def kill_at_7(st: StepStats) -> None:
        if st.step == 7:  # after the step-5 checkpoint, before the next one
            raise WorkerKilled

    resumed = hook_train(monkeypatch, kill_at_7)
    with pytest.raises(WorkerKilled):
        tasks.training_job_run(run.job_id)
    job = Job.objects.get(pk=run.job_id)
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1)

    monkeypatch.setattr(runner, "train", _plain(resumed))
    # The heartbeat goes stale; the reconciler (celery beat) requeues, and the eager queue runs it here.
    stale = timezone.now() - timedelta(seconds=settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT + 5)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    assert jobs.jobs_reconcile()["requeued"] == 1
    job.refresh_from_db()
    run.refresh_from_db()
    assert (job.status, job.attempts, job.done) == (Job.Status.SUCCEEDED, 2, 15)
    assert resumed[0] is None and resumed[1].name == "step_00000005.pt"  # not from zero
    steps = list(TrainingMetric.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(1, 16))
    assert (run.step, run.checkpoint_step) == (15, 15)


def test_a_redelivered_message_of_a_live_job_does_nothing(photo_dir: Path) -> None:
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)
    assert run.job_id is not None
    jobs.job_claim(run.job_id, worker="other-host")  # still heartbeating elsewhere
    tasks.training_job_run(run.job_id)
    job = Job.objects.get(pk=run.job_id)
    assert (job.status, job.worker, job.attempts) == (Job.Status.RUNNING, "other-host", 1)
    assert not TrainingMetric.objects.filter(run=run).exists()


def _plain(resumed: list[Any]) -> Any:
    """training.ml.train, recording the checkpoint each call resumes from."""

    def train(*args: Any, **kwargs: Any) -> Any:
        resumed.append(kwargs.get("resume"))
        return real_train(*args, **kwargs)

    return train
