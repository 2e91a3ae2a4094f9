"""Job reads: which jobs a user may watch."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from flatsite.core import roles
from flatsite.jobs.models import Job


def jobs_visible(user: Any) -> QuerySet[Job]:
    """Jobs a user may watch: their own, or all for admins."""
    qs = Job.objects.select_related("created_by")
    if roles.can(user, roles.MANAGE_JOBS):
        return qs
    return qs.filter(created_by=user) if user.is_authenticated else qs.none()


def job_viewable(user: Any, job_id: int) -> Job | None:
    """The job if the user may watch it."""
    return jobs_visible(user).filter(pk=job_id).first()
