"""Progress publishing: throttling of running jobs and what the throttle keeps in memory."""

from __future__ import annotations

import pytest

from flatsite.jobs import events
from search.models import Job
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_running_job_snapshots_are_throttled_and_a_finished_job_is_forgotten() -> None:
    job = Job.objects.create(kind=Job.Kind.INGEST, created_by=UserFactory(), status=Job.Status.RUNNING)
    events.job_changed(job)
    first = events._last_sent[job.pk]
    events.job_changed(job)  # within MIN_INTERVAL_S: throttled, the last send time stays
    assert events._last_sent[job.pk] == first

    job.status = Job.Status.SUCCEEDED
    events.job_changed(job)
    # A long-running worker publishes for every job it ever ran: the throttle must not remember them all.
    assert job.pk not in events._last_sent


def test_a_thousand_finished_jobs_leave_nothing_in_the_throttle() -> None:
    owner = UserFactory()
    before = len(events._last_sent)
    for _ in range(1000):
        job = Job.objects.create(kind=Job.Kind.INGEST, created_by=owner, status=Job.Status.RUNNING)
        events.job_changed(job)
        job.status = Job.Status.FAILED
        events.job_changed(job)
    assert len(events._last_sent) == before
