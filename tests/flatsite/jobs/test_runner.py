"""The one job runner: how work's outcome (result, exception, cancel) becomes the job's final state."""

from __future__ import annotations

from typing import Any

import pytest

from flatsite.jobs import runner
from flatsite.jobs import services as jobs
from flatsite.jobs.models import Job

pytestmark = pytest.mark.django_db


def _claimed(total: int = 4) -> Job:
    job = jobs.job_create(Job.Kind.EXTRACT, total=total)
    assert jobs.job_claim(job.pk) is not None
    return job


def test_work_that_returns_succeeds_with_its_result_and_progress() -> None:
    job = _claimed()

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        ctx.on_step(2, total=3, message="halfway")
        assert Job.objects.get(pk=job.pk).message == "halfway"
        return {"extracted": 3}

    finished = runner.job_run(job.pk, work, label="extraction")
    assert (finished.status, finished.result, finished.done, finished.total) == (
        Job.Status.SUCCEEDED, {"extracted": 3}, 3, 3,
    )  # fmt: skip


def test_work_that_raises_fails_with_its_label_and_reason_and_keeps_its_partial_result() -> None:
    job = _claimed()

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        ctx.result["run"] = 7
        raise ValueError("no photos have features yet")

    finished = runner.job_run(job.pk, work, label="clustering")
    assert finished.status == Job.Status.FAILED
    assert finished.error == "clustering failed: no photos have features yet"
    assert finished.result == {"run": 7}


def test_work_that_returns_after_a_cancel_request_ends_cancelled_with_what_it_did() -> None:
    job = _claimed()

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        jobs.job_cancel(job.pk)
        assert ctx.should_stop()
        return {"stopped_at": 1}

    finished = runner.job_run(job.pk, work, label="extraction")
    assert (finished.status, finished.result, finished.error) == (Job.Status.CANCELLED, {"stopped_at": 1}, "")


def test_work_that_raises_job_stopped_ends_cancelled_not_failed() -> None:
    job = _claimed()

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        jobs.job_cancel(job.pk)
        raise runner.JobStopped

    finished = runner.job_run(job.pk, work, label="evaluation")
    assert (finished.status, finished.error, finished.result) == (Job.Status.CANCELLED, "", {})


def test_a_domain_finish_ends_the_job_instead_of_the_platform_one() -> None:
    job = _claimed()
    ended: list[str] = []

    def finish(job_id: int, *, status: str, result: dict[str, Any] | None = None, error: str = "") -> Job:
        ended.append(status)
        return jobs.job_finish(job_id, status=status, result=result, error=error)

    runner.job_run(job.pk, lambda ctx: {}, label="training", finish=finish)
    assert ended == [Job.Status.SUCCEEDED]


def test_a_redelivered_task_finds_the_job_taken_and_runs_its_work_once() -> None:
    job = jobs.job_create(Job.Kind.EXTRACT, total=1)
    calls: list[int] = []

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        calls.append(ctx.job_id)
        return {"n": len(calls)}

    def deliver() -> None:  # what every task door does: claim, then run
        if jobs.job_claim(job.pk) is not None:
            runner.job_run(job.pk, work, label="extraction")

    deliver()
    deliver()
    job.refresh_from_db()
    assert calls == [job.pk]
    assert (job.status, job.result, job.attempts) == (Job.Status.SUCCEEDED, {"n": 1}, 1)
