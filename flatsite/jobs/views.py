"""Job pages: the list, one job with live progress, and cancel (templates under search/)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from flatsite.jobs import hooks, selectors
from flatsite.jobs import services as jobs


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    """Jobs the user may watch, live."""
    return render(request, "search/job_list.html", {"jobs": selectors.jobs_visible(request.user)[:100]})


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
