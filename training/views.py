"""Training pages (admins only): parse input, call one service or selector, render."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from flatsite.core import roles, storage
from flatsite.core.permissions import role_required
from training import events, presets, selectors, services
from training.forms import RunResumeForm, RunStartForm
from training.models import TrainingRun

View = Callable[..., HttpResponseBase]

admin_only = role_required(roles.MANAGE_JOBS, "Only admins can manage training runs.")


def _run_or_404(run_id: int) -> TrainingRun:
    run = selectors.run_get(run_id)
    if run is None:
        raise Http404("No such training run.")
    return run


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _get_shows_run(view: View) -> View:
    """A GET on a run's action URL (reopened or bookmarked) shows the run instead of a blank 405."""

    @wraps(view)
    def wrapped(request: HttpRequest, run_id: int) -> HttpResponseBase:
        if request.method == "GET":
            return redirect("training:run", run_id=_run_or_404(run_id).pk)
        return view(request, run_id)

    return wrapped


def _run_action(view: View) -> View:
    """An admin's action on one run: POST acts, GET shows the run, any other method is refused (405)."""
    return admin_only(require_http_methods(["GET", "POST"])(_get_shows_run(view)))


@admin_only
def run_list(request: HttpRequest) -> HttpResponse:
    """Every run, live, and the form that starts one."""
    context = {"runs": selectors.runs_list()[:200], "form": RunStartForm()}
    return render(request, "training/run_list.html", {**context, "gpu_queue": settings.FLATSITE_GPU_QUEUE})


@admin_only
@require_http_methods(["GET", "POST"])
def run_create(request: HttpRequest) -> HttpResponse:
    """Start a run from a preset on the stored photos; a GET (a reopened URL) goes to the form."""
    if request.method == "GET":  # the start form lives on the run list
        return redirect("training:runs")
    form = RunStartForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            choice = services.data_choice_photos(data["room"] or "")
            run = services.run_start(
                preset=data["preset"], data=choice, user=request.user, steps=data["steps"], name=data["name"]
            )
        except ValidationError as exc:
            form.add_error(None, _errors(exc))
        else:
            messages.success(request, f"Training run #{run.pk} queued.")
            return redirect("training:run", run_id=run.pk)
    context = {"runs": selectors.runs_list()[:200], "form": form, "gpu_queue": settings.FLATSITE_GPU_QUEUE}
    return render(request, "training/run_list.html", context, status=400)


@admin_only
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's live page: progress, loss and FD-Lite charts, the latest sample grid, its jobs."""
    run = _run_or_404(run_id)
    context = {
        "run": run,
        "label": presets.RUN_PRESETS[run.preset].label if run.preset in presets.RUN_PRESETS else run.preset,
        "snapshot": events.run_snapshot(run),
        "jobs": selectors.run_jobs(run)[:50],
        "resume_form": RunResumeForm(),
    }
    return render(request, "training/run_detail.html", context)


@admin_only
def run_snapshot(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's snapshot as JSON (what the websocket sends)."""
    return JsonResponse(events.run_snapshot(_run_or_404(run_id)))


@_run_action
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    """Stop a run; its worker writes a checkpoint first."""
    run = services.run_cancel(_run_or_404(run_id).pk)
    messages.info(request, f"Cancel requested for run #{run.pk}; it stops after writing a checkpoint.")
    return redirect("training:run", run_id=run.pk)


@_run_action
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    """Continue a stopped run from its last checkpoint."""
    run = _run_or_404(run_id)
    form = RunResumeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Steps must be a whole number of at least 1.")
        return redirect("training:run", run_id=run.pk)
    try:
        run = services.run_resume(run.pk, user=request.user, steps=form.cleaned_data["steps"])
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Run #{run.pk} resumes from step {run.checkpoint_step}.")
    return redirect("training:run", run_id=run.pk)


@_run_action
def run_index(request: HttpRequest, run_id: int) -> HttpResponse:
    """Extract and index every stored photo with this run's encoder (a job)."""
    run = _run_or_404(run_id)
    try:
        job = services.run_index_start(run.pk, user=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("training:run", run_id=run.pk)
    messages.success(request, f"Indexing with the encoder of run #{run.pk} queued.")
    return redirect("jobs:detail", job_id=job.pk)


@admin_only
def sample_file(request: HttpRequest, run_id: int, step: int) -> HttpResponseBase:
    """A sample grid PNG."""
    sample = selectors.sample_get(run_id, step)
    if sample is None:
        raise Http404("No such sample grid.")
    try:
        handle = open(storage.media_path(sample.path), "rb")  # noqa: SIM115 - FileResponse closes it
    except (FileNotFoundError, ValueError) as exc:
        raise Http404("Sample file missing.") from exc
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=60"  # a rewound run redraws its later steps
    return response
