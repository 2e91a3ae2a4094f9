"""The one way a claimed job runs: work reports through a context; the runner decides how the job ends.

The stop convention: work that sees should_stop() returns what it did (or raises JobStopped when it has
nothing to return); the runner marks the job CANCELLED whenever a cancel was requested by the time work
ends, SUCCEEDED otherwise. Any other exception marks it FAILED with "<label> failed: <exception>".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flatsite.jobs import services as jobs
from flatsite.jobs.models import Job

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """Raised by work that stopped at a cancel request with nothing more to report."""


class Finish(Protocol):
    """How a job ends (jobs.job_finish, or a domain's wrapper that also tells its own pages)."""

    def __call__(
        self, job_id: int, *, status: str, result: dict[str, Any] | None = None, error: str = ""
    ) -> Job: ...


@dataclass
class JobContext:
    """What work sees of its job: progress, the cancel flag, and a result kept whatever the outcome."""

    job_id: int
    result: dict[str, Any] = field(default_factory=dict)

    def on_step(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress (and renew the lease)."""
        jobs.job_progress(self.job_id, done=done, total=total, message=message)

    def should_stop(self) -> bool:
        """Whether a cancel was requested."""
        return jobs.job_should_stop(self.job_id)


def job_run(
    job_id: int,
    work: Callable[[JobContext], dict[str, Any]],
    *,
    label: str,
    finish: Finish | None = None,
) -> Job:
    """Run a claimed job's work to a final state: succeeded, cancelled or failed."""
    finish = finish or jobs.job_finish
    ctx = JobContext(job_id)
    try:
        result = work(ctx)
    except JobStopped:
        return finish(job_id, status=Job.Status.CANCELLED, result=ctx.result or None)
    except Exception as exc:  # the job fails with its reason; retrying would fail the same way
        log.exception("%s job %s failed", label, job_id)
        return finish(
            job_id, status=Job.Status.FAILED, result=ctx.result or None, error=f"{label} failed: {exc}"
        )
    status = Job.Status.CANCELLED if ctx.should_stop() else Job.Status.SUCCEEDED
    return finish(job_id, status=status, result={**ctx.result, **result})
