"""Job pages: the list, one job with live progress, and cancel (templates under search/)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import TextChoices
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from flatsite.jobs import hooks, selectors
from flatsite.jobs import services as jobs
from flatsite.jobs.models import Job


def choice_param(request: HttpRequest, name: str, choices: type[TextChoices]) -> tuple[str, bool]:
    """A GET parameter that must be one of choices ("" when absent), and whether it was valid."""
    value = request.GET.get(name, "").strip()
    if not value or value in choices.values:
        return value, True
    known = ", ".join(choices.values)
    messages.warning(request, f"Unknown {name} “{value[:40]}”: showing every {name}. Known: {known}.")
    return "", False


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    """Jobs the user may watch, live: filtered by kind and status, newest first, a page at a time."""
    kind, kind_ok = choice_param(request, "kind", Job.Kind)
    status, status_ok = choice_param(request, "status", Job.Status)
    page, note = selectors.page_of(
        selectors.jobs_filtered(request.user, kind, status), request.GET.get("page")
    )
    if note:
        messages.info(request, note)
    context = {
        "jobs": page.object_list,
        "page": page,
        "kind": kind,
        "status": status,
        "kinds": Job.Kind.values,
        "statuses": Job.Status.values,
        # New jobs are drawn in live only where they belong: the unfiltered first page.
        "live_insert": not (kind or status) and page.number == 1,
    }
    # A bad filter is the caller's error (400), still answered with the page and what went wrong.
    return render(request, "search/job_list.html", context, status=200 if kind_ok and status_ok else 400)


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job with a live progress bar (and the details its domain adds, e.g. per-photo outcomes)."""
    job = selectors.job_viewable(request.user, job_id)
    if job is None:
        raise Http404("No such job, or it is not yours.")
    return render(request, "search/job_detail.html", {"job": job, **hooks.job_details(job)})


@login_required
@require_http_methods(["GET", "POST"])
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    """Cancel a job (its owner or an admin); a GET (a reopened URL) only shows the job."""
    job = selectors.job_viewable(request.user, job_id)
    if job is None:
        raise Http404("No such job, or it is not yours.")
    if request.method == "GET":
        return redirect("jobs:detail", job_id=job.pk)
    jobs.job_cancel(job.pk)
    messages.info(request, f"Cancel requested for job #{job.pk}.")
    return redirect("jobs:detail", job_id=job.pk)
