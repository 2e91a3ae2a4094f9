"""Admin operations: re-extract, reindex, evaluate index versions, switch the live one and the search encoder.

Every action that changes what searches find goes through a confirmation page (flatsite.confirm) that states
the coverage and what changes; a refused action changes nothing and says why.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from flatsite.confirm import confirmation_page, confirmed
from flatsite.core import roles
from flatsite.core.permissions import post_only, role_required
from search.listings import selectors
from search.matching import features, index
from search.ml.index import IndexLocked
from search.models import Job
from search.ops import evaluation
from search.ops import selectors as selectors_ops
from search.ops.selectors import Coverage, OperationPlan, VersionRow

OPERATIONS = {"extract": Job.Kind.EXTRACT, "reindex": Job.Kind.REINDEX}


@role_required(roles.MANAGE_JOBS, "Only admins can start operations.")
@require_http_methods(["GET", "POST"])
def operations(request: HttpRequest) -> HttpResponse:
    """Start re-extraction or reindexing for an encoder (after a confirmation); see index versions."""
    if request.method == "POST":
        return _operation_post(request)
    context = {
        "encoders": selectors.encoders_overview(),
        "indexes": selectors_ops.index_overview(),
        "search_encoder": selectors_ops.search_encoder(),
        "active": features.active_encoders(),
        "comparison": selectors_ops.encoder_comparison(),
    }
    return render(request, "search/operations.html", context)


def _operation_post(request: HttpRequest) -> HttpResponse:
    kind = OPERATIONS.get(request.POST.get("operation", ""))
    encoder = request.POST.get("encoder", "")
    try:
        if kind is None:
            raise ValueError("Unknown operation.")
        plan = selectors_ops.operation_plan(kind, encoder)
        if not confirmed(request):
            return _operation_confirmation(request, plan)
        job = features.operation_enqueue(kind, user=request.user, encoder=encoder)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("ops:page")
    return redirect("jobs:detail", job_id=job.pk)


def _coverage_line(subject: str, coverage: Coverage, encoder: str) -> str:
    line = f"{subject}: {coverage}."
    if not coverage.full:
        line += f" Warning: searches with {encoder} will not find the other {coverage.missing} stored photos."
    return line


def _searches_meanwhile(plan: OperationPlan) -> str:
    if plan.encoder != plan.search_encoder:
        return f"Search uses {plan.search_encoder}, not {plan.encoder}: searches are not affected."
    live = f"v{plan.live.version}" if plan.live else "(none yet)"
    return f"Searches keep using the current live {plan.encoder} index {live} until the new version is live."


def _ops_confirmation(request: HttpRequest, title: str, lines: list[str], button: str) -> HttpResponse:
    """A confirmation page for an operation whose cancel goes back to the operations page."""
    return confirmation_page(
        request, title=title, consequences=lines, button=button, cancel_url=reverse("ops:page")
    )


def _operation_confirmation(request: HttpRequest, plan: OperationPlan) -> HttpResponse:
    if plan.kind == Job.Kind.EXTRACT:
        title = f"Re-extract all {plan.encoder} features?"
        lines = [
            f"Recomputes the {plan.encoder} features of all {plan.stored} stored photos: each image is "
            "embedded again, which takes long without a GPU.",
            f"Then builds a fresh {plan.encoder} index version from them and makes it live.",
        ]
    else:
        title = f"Rebuild the {plan.encoder} index?"
        lines = [
            f"Builds a fresh {plan.encoder} index version from the {plan.features} stored {plan.encoder} "
            "features and makes it live as soon as it is built.",
            _coverage_line("The new version", plan.rebuild_coverage, plan.encoder),
        ]
    lines += [
        _searches_meanwhile(plan),
        "The current live version stays on disk for a while and can go live again.",
    ]
    button = "Re-extract all" if plan.kind == Job.Kind.EXTRACT else "Rebuild index"
    return _ops_confirmation(request, title, lines, button)


def _version_from(request: HttpRequest) -> tuple[str, int]:
    encoder, raw = request.POST.get("encoder", ""), request.POST.get("version", "")
    try:
        return encoder, int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not an index version number") from None


@role_required(roles.MANAGE_JOBS, "Only admins can switch index versions.")
@post_only("ops:page")
def index_live(request: HttpRequest) -> HttpResponse:
    """Make an index version live after a confirmation that states its coverage (reversible)."""
    try:
        encoder, version = _version_from(request)
        candidate = selectors_ops.live_candidate(encoder, version)
        if not confirmed(request):
            return _live_confirmation(request, candidate)
        row = index.index_set_live(encoder, version)
    except (ValueError, IndexLocked) as exc:
        messages.error(request, f"Cannot switch, nothing was changed: {exc}")
    else:
        messages.success(request, f"{encoder} index v{row.version} is now live.")
    return redirect("ops:page")


def _live_confirmation(request: HttpRequest, candidate: VersionRow) -> HttpResponse:
    encoder, version = candidate.row.encoder, candidate.row.version
    search = selectors_ops.search_encoder()
    if encoder == search:
        effect = f"Every search switches to v{version} at once."
    else:
        effect = (
            f"Search uses {search}, not {encoder}: searches change only if {encoder} is chosen for search."
        )
    lines = [
        _coverage_line(
            f"v{version} ({candidate.row.count} vectors, built {candidate.row.created_at:%Y-%m-%d %H:%M})",
            candidate.coverage,
            encoder,
        ),
        effect,
        f"New photos are added on top of v{version}; photos it lacks come back only with a rebuild.",
        "The current live version stays on disk for a while and can go live again.",
    ]
    return _ops_confirmation(
        request, f"Make {encoder} index v{version} live?", lines, f"Make v{version} live"
    )


@role_required(roles.MANAGE_JOBS, "Only admins can choose the search encoder.")
@post_only("ops:page")
def search_encoder(request: HttpRequest) -> HttpResponse:
    """Choose which encoder's live index search uses, after a confirmation (stored in the database)."""
    encoder = request.POST.get("encoder", "")
    try:
        candidate = selectors_ops.search_candidate(encoder)
        if not confirmed(request):
            return _search_confirmation(request, candidate)
        index.search_encoder_set(encoder, user=request.user)
    except ValueError as exc:
        messages.error(request, f"Cannot switch the search encoder, nothing was changed: {exc}")
    else:
        messages.success(request, f"Search now uses {encoder}.")
    return redirect("ops:page")


def _search_confirmation(request: HttpRequest, candidate: VersionRow) -> HttpResponse:
    encoder, current = candidate.row.encoder, selectors_ops.search_encoder()
    lines = [
        f"Searches use {encoder}'s live index v{candidate.row.version} instead of {current}'s.",
        _coverage_line(f"{encoder} v{candidate.row.version}", candidate.coverage, encoder),
        f"Query photos are embedded with {encoder}: results and their order change.",
        f"New photos get {encoder} features and join its index from now on.",
    ]
    if current != settings.FLATSITE_CLUSTER_ENCODER:
        lines.append(f"New photos stop getting {current} features: switching back later shows it partial.")
    if encoder == settings.FLATSITE_RERANK_ENCODER:
        lines.append(
            f"The similar-look re-ranking blends in {encoder} itself, so it is off while it searches."
        )
    lines.append(f"You can switch back to {current} here at any time.")
    return _ops_confirmation(request, f"Search with {encoder}?", lines, f"Search with {encoder}")


@role_required(roles.MANAGE_JOBS, "Only admins can evaluate index versions.")
@post_only("ops:page")
def index_evaluate(request: HttpRequest) -> HttpResponse:
    """Queue an evaluation of one index version's encoder (near-duplicate recall, room agreement)."""
    try:
        version = int(request.POST.get("version", ""))
        job = evaluation.index_evaluate_enqueue(request.POST.get("encoder", ""), version, user=request.user)
    except (ValueError, LookupError) as exc:
        messages.error(request, f"Cannot evaluate: {exc}")
        return redirect("ops:page")
    return redirect("jobs:detail", job_id=job.pk)
