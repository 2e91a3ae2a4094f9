"""Moderator pages of clustering: cluster list, gallery, map, history, runs; actions are POSTs to services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from flatsite.confirm import confirmation_page, confirmed
from flatsite.core import roles
from flatsite.core.permissions import post_only, role_required
from search.clusters import actions, runs
from search.clusters import selectors as sel
from search.models import ClusteringRun

review_required = role_required(roles.REVIEW, "Only moderators and admins can review clusters.")
manage_required = role_required(roles.MANAGE_JOBS, "Only admins can start clustering runs.")


def _run_or_404(run_id: int | None) -> ClusteringRun:
    run = sel.run_get(run_id) if run_id is not None else sel.current_run()
    if run is None:
        raise Http404("No such clustering run.")
    return run


def _run_context(run: ClusteringRun | None) -> dict[str, Any]:
    return {
        "run": run,
        "active_job": sel.clustering_job_active(run.encoder if run else None),
        "undoable": sel.last_undoable(run) if run is not None and run.is_current else None,
    }


@review_required
@require_GET
def cluster_list(request: HttpRequest, run_id: int | None = None) -> HttpResponse:
    """Clusters of the current (or a given) run: size, representatives, name, state, noise share."""
    run = sel.run_get(run_id) if run_id is not None else sel.current_run()
    if run_id is not None and run is None:
        raise Http404("No such clustering run.")
    context = _run_context(run)
    if run is not None:
        context.update(
            rows=sel.cluster_rows(run), noise=sel.noise_count(run), low_threshold=sel.LOW_CONFIDENCE
        )
    return render(request, "search/clusters/list.html", context)


def _gallery(request: HttpRequest, run: ClusteringRun, cluster: Any) -> HttpResponse:
    order = request.GET.get("order", "central")
    context = _run_context(run)
    context.update(
        cluster=cluster,
        page=sel.members_page(run, cluster, request.GET.get("page"), order),
        order=order,
        orders=list(sel.GALLERY_ORDERS),
        low=sel.low_confidence_count(run, cluster),
        low_threshold=sel.LOW_CONFIDENCE,
        targets=sel.move_targets(run),
        editable=run.is_current,
    )
    return render(request, "search/clusters/gallery.html", context)


@review_required
@require_GET
def cluster_gallery(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """A cluster's members as paginated thumbnails, least confident flagged."""
    cluster = sel.cluster_get(cluster_id)
    if cluster is None:
        raise Http404("No such cluster.")
    return _gallery(request, cluster.run, cluster)


@review_required
@require_GET
def noise_gallery(request: HttpRequest, run_id: int) -> HttpResponse:
    """The photos a run left in no cluster."""
    return _gallery(request, _run_or_404(run_id), None)


@review_required
@require_GET
def cluster_map(request: HttpRequest, run_id: int | None = None) -> HttpResponse:
    """The interactive 2-D map of a run (drawn in the browser from map_data)."""
    run = _run_or_404(run_id)
    context = _run_context(run)
    context.update(targets=sel.move_targets(run), editable=run.is_current)
    return render(request, "search/clusters/map.html", context)


@review_required
@require_GET
def map_data(request: HttpRequest, run_id: int) -> JsonResponse:
    """Points of the 2-D map as column arrays."""
    return JsonResponse(sel.map_data(_run_or_404(run_id)))


@review_required
@require_GET
def history(request: HttpRequest, run_id: int | None = None) -> HttpResponse:
    """Every moderator action of a run (who, when, what; undone ones marked)."""
    run = _run_or_404(run_id)
    context = _run_context(run)
    context["actions"] = sel.run_history(run)
    return render(request, "search/clusters/history.html", context)


@review_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    """All clustering runs; older ones stay browsable."""
    context = _run_context(sel.current_run())
    context["runs"] = sel.runs_list()
    return render(request, "search/clusters/runs.html", context)


@review_required
@require_GET
def photo_detail(request: HttpRequest, photo_id: int) -> HttpResponse:
    """One photo, the cluster a run put it in, and the moves a moderator can make."""
    photo = sel.photo_get(photo_id)
    run = _run_or_404(int(request.GET["run"]) if request.GET.get("run", "").isdigit() else None)
    if photo is None:
        raise Http404("No such photo.")
    context = _run_context(run)
    context.update(
        photo=photo,
        membership=sel.photo_membership(run, photo.pk),
        targets=sel.move_targets(run),
        editable=run.is_current,
    )
    return render(request, "search/clusters/photo.html", context)


def _back(request: HttpRequest, default: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


def _ids(request: HttpRequest, name: str) -> list[int]:
    """Integer ids from repeated fields and comma-separated lists (the map sends the latter)."""
    found: list[int] = []
    for value in request.POST.getlist(name):
        for part in value.split(","):
            if part.strip():
                if not part.strip().isdigit():
                    raise ValidationError(f"not a photo or cluster id: {part.strip()[:20]!r}")
                found.append(int(part))
    return found


def _act(request: HttpRequest, default: str, do: Callable[[], Any]) -> HttpResponse:
    """Run one action service; report its outcome as a message and go back."""
    try:
        action = do()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(request, default)
    messages.success(request, action.description)
    return _back(request, default)


def _confirm_first(
    request: HttpRequest,
    default: str,
    asked: tuple[str, str],
    consequences: Callable[[], sel.Consequences],
    do: Callable[[], Any],
) -> HttpResponse:
    """A destructive action: without confirmed=yes, only show what it would do (asked: title, button)."""
    if confirmed(request):
        return _act(request, default, do)
    try:
        found = consequences()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(request, default)
    title, button = asked
    thumbs = sel.photo_url_template("thumb")
    return confirmation_page(
        request,
        title=title,
        consequences=found.lines,
        button=button,
        cancel_url=default,
        images=[thumbs.replace("{id}", str(pid)) for pid in found.photo_ids],
    )


def _current_run_id(request: HttpRequest) -> int:
    value = request.POST.get("run", "")
    if not value.isdigit():
        raise Http404("No run given.")
    return int(value)


@review_required
@post_only("clusters:detail")
def cluster_name(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """Name a cluster."""
    name = request.POST.get("name", "")
    default = reverse("clusters:detail", args=[cluster_id])
    return _act(request, default, lambda: actions.cluster_name(cluster_id, name, user=request.user))


@review_required
@post_only("clusters:detail")
def cluster_approve(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """Approve a cluster (approved=0 withdraws the approval)."""
    approved = request.POST.get("approved", "1") != "0"
    default = reverse("clusters:detail", args=[cluster_id])
    return _act(
        request, default, lambda: actions.cluster_approve(cluster_id, user=request.user, approved=approved)
    )


@review_required
@post_only("clusters:detail")
def cluster_noise(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """Dissolve a cluster into noise (after a confirmation page)."""
    return _confirm_first(
        request,
        reverse("clusters:list"),
        ("Mark the whole cluster as noise?", "Mark as noise"),
        lambda: sel.cluster_noise_consequences(cluster_id),
        lambda: actions.cluster_mark_noise(cluster_id, user=request.user),
    )


@review_required
@post_only("clusters:detail")
def cluster_merge(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """Merge the chosen clusters into this one (after a confirmation page)."""
    return _confirm_first(
        request,
        reverse("clusters:detail", args=[cluster_id]),
        ("Merge these clusters?", "Merge"),
        lambda: sel.merge_consequences(cluster_id, _ids(request, "source")),
        lambda: actions.clusters_merge(cluster_id, _ids(request, "source"), user=request.user),
    )


@review_required
@post_only("clusters:list")
def photos_move(request: HttpRequest) -> HttpResponse:
    """Move selected photos into a cluster."""
    run_id = _current_run_id(request)
    target = request.POST.get("target", "")

    def do() -> Any:
        if not target.isdigit():
            raise ValidationError("choose the cluster to move the photos into")
        return actions.photos_move(run_id, _ids(request, "photo"), int(target), user=request.user)

    return _act(request, reverse("clusters:list"), do)


@review_required
@post_only("clusters:list")
def photos_split(request: HttpRequest) -> HttpResponse:
    """Split selected photos off into a new cluster (after a confirmation page)."""
    run_id = _current_run_id(request)
    name = request.POST.get("name", "")
    return _confirm_first(
        request,
        reverse("clusters:list"),
        ("Split these photos off into a new cluster?", "Split off"),
        lambda: sel.split_consequences(run_id, _ids(request, "photo"), name),
        lambda: actions.photos_split(run_id, _ids(request, "photo"), user=request.user, name=name),
    )


@review_required
@post_only("clusters:list")
def photos_noise(request: HttpRequest) -> HttpResponse:
    """Mark selected photos as noise ("not in this cluster"), after a confirmation page."""
    run_id = _current_run_id(request)
    return _confirm_first(
        request,
        reverse("clusters:list"),
        ("Mark these photos as noise?", "Mark as noise"),
        lambda: sel.photos_noise_consequences(run_id, _ids(request, "photo")),
        lambda: actions.photos_mark_noise(run_id, _ids(request, "photo"), user=request.user),
    )


@review_required
@post_only("clusters:list")
def undo(request: HttpRequest) -> HttpResponse:
    """Undo the newest action of the current run that is not undone yet (the one the button named)."""
    run_id = _current_run_id(request)
    offered = request.POST.get("action", "").strip()

    def do() -> Any:
        if offered and not offered.isdigit():
            raise ValidationError(f"not an action id: {offered[:20]!r}")
        expected = int(offered) if offered else None
        return actions.action_undo_last(run_id, user=request.user, expected=expected)

    return _act(request, reverse("clusters:list"), do)


@manage_required
@post_only("clusters:runs")
def rerun(request: HttpRequest) -> HttpResponse:
    """Admin: start a clustering run (parameters default to the current run's) and watch its job."""
    params: dict[str, Any] = {}
    size = request.POST.get("min_cluster_size", "").strip()
    try:
        if size:
            if not size.isdigit():
                raise ValidationError("minimum cluster size must be a whole number")
            params["min_cluster_size"] = int(size)
        job = runs.clustering_start(user=request.user, params=params)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("clusters:list")
    messages.info(request, f"Clustering job #{job.pk} started; the new run becomes current when it finishes.")
    return redirect("jobs:detail", job_id=job.pk)


@manage_required
@post_only("clusters:run")
def run_current(request: HttpRequest, run_id: int) -> HttpResponse:
    """Admin: make an older (ready) run the current one."""
    try:
        run = runs.run_switch_current(run_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("clusters:runs")
    except ClusteringRun.DoesNotExist as exc:
        raise Http404("No such clustering run.") from exc
    messages.success(request, f"Run #{run.pk} is now current.")
    return redirect("clusters:list")
