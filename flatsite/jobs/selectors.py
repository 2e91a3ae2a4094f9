"""Job reads: which jobs a user may watch, and the paging the list pages share."""

from __future__ import annotations

from typing import Any

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import QuerySet

from flatsite.core import roles
from flatsite.jobs.models import Job

PER_PAGE = 50


def jobs_visible(user: Any) -> QuerySet[Job]:
    """Jobs a user may watch: their own, or all for admins."""
    qs = Job.objects.select_related("created_by")
    if roles.can(user, roles.MANAGE_JOBS):
        return qs
    return qs.filter(created_by=user) if user.is_authenticated else qs.none()


def job_viewable(user: Any, job_id: int) -> Job | None:
    """The job if the user may watch it."""
    return jobs_visible(user).filter(pk=job_id).first()


def jobs_filtered(user: Any, kind: str = "", status: str = "") -> QuerySet[Job]:
    """Jobs a user may watch, of one kind and one status when given, newest first."""
    qs = jobs_visible(user)
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def page_of(qs: QuerySet[Any], number: str | None, per_page: int = PER_PAGE) -> tuple[Page[Any], str]:
    """One page of an ordered queryset, and a note saying which page is shown when the asked one is not."""
    paginator = Paginator(qs, per_page)
    if number in (None, ""):
        return paginator.page(1), ""
    try:
        return paginator.page(number), ""
    except PageNotAnInteger:
        return paginator.page(1), f"“{number[:20]}” is not a page number: showing page 1."
    except EmptyPage:
        # Below 1 means the first page; past the end (a shared URL after rows went away) the last.
        shown = 1 if int(number) < 1 else paginator.num_pages
        note = f"There is no page {number[:20]}: showing page {shown} of {paginator.num_pages}."
        return paginator.page(shown), note
