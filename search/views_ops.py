"""Admin operations: re-extract, reindex, evaluate index versions and switch the live one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from search import roles, selectors, selectors_ops
from search.models import Job
from search.services import evaluation, features, index

OPERATIONS = {"extract": Job.Kind.EXTRACT, "reindex": Job.Kind.REINDEX}


@login_required
@require_http_methods(["GET", "POST"])
def operations(request: HttpRequest) -> HttpResponse:
    """Start re-extraction or reindexing for an encoder; see index versions."""
    if not roles.can(request.user, roles.MANAGE_JOBS):
        return HttpResponseForbidden("Only admins can start operations.")
    if request.method == "POST":
        kind = OPERATIONS.get(request.POST.get("operation", ""))
        encoder = request.POST.get("encoder", "")
        if kind is None:
            messages.error(request, "Unknown operation.")
        else:
            try:
                job = features.operation_enqueue(kind, user=request.user, encoder=encoder)
            except ValueError as exc:
                messages.error(request, str(exc))
            else:
                return redirect("search-job", job_id=job.pk)
    context = {
        "encoders": selectors.encoders_overview(),
        "versions": selectors.index_versions(),
        "active": features.active_encoders(),
        "comparison": selectors_ops.encoder_comparison(),
    }
    return render(request, "search/operations.html", context)


@login_required
@require_POST
def index_live(request: HttpRequest) -> HttpResponse:
    """Make an index version live (atomic, reversible by choosing another)."""
    if not roles.can(request.user, roles.MANAGE_JOBS):
        return HttpResponseForbidden("Only admins can switch index versions.")
    try:
        row = index.index_set_live(request.POST.get("encoder", ""), int(request.POST.get("version", "0")))
    except (ValueError, LookupError) as exc:
        messages.error(request, f"Cannot switch: {exc}")
    else:
        messages.success(request, f"{row} is now live.")
    return redirect("search-operations")


@login_required
@require_POST
def index_evaluate(request: HttpRequest) -> HttpResponse:
    """Queue an evaluation of one index version's encoder (near-duplicate recall, room agreement)."""
    if not roles.can(request.user, roles.MANAGE_JOBS):
        return HttpResponseForbidden("Only admins can evaluate index versions.")
    try:
        version = int(request.POST.get("version", ""))
        job = evaluation.index_evaluate_enqueue(request.POST.get("encoder", ""), version, user=request.user)
    except (ValueError, LookupError) as exc:
        messages.error(request, f"Cannot evaluate: {exc}")
        return redirect("search-operations")
    return redirect("search-job", job_id=job.pk)
