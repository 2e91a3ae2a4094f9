"""Shared helpers of the training commands: wait for a job while printing its progress."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import CommandError

from flatsite.jobs.models import Job


def wait_for_job(job_id: int, echo: Callable[[str], None], timeout: float, interval: float = 2.0) -> Job:
    """Poll a job until it is final, printing its message whenever its progress changes."""
    deadline = time.monotonic() + timeout
    last: tuple[str, int, str] | None = None
    while True:
        job = Job.objects.get(pk=job_id)
        state = (job.status, job.done, job.message)
        if state != last:
            echo(f"job #{job.pk} {job.status}: {job.done}/{job.total} {job.message}".rstrip())
            last = state
        if job.is_final:
            return job
        if time.monotonic() > deadline:
            raise CommandError(
                f"job #{job_id} still {job.status} after {timeout:.0f} s (is a worker running?)"
            )
        time.sleep(interval)
