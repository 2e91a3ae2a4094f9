"""Read-only queries of the training app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from flatsite.core import storage
from flatsite.jobs.models import Job
from search.models import Photo
from training.ml import list_images
from training.models import TrainingMetric, TrainingRun, TrainingSample

MAX_POINTS = 600  # metric points per snapshot; longer histories are thinned evenly
SERIES = ("step", "resolution", "alpha", "loss_g", "loss_d", "gp", "loss_enc", "images_per_s")
TRAINABLE = (Photo.Status.PROCESSED, Photo.Status.INDEXED)


def runs_list() -> QuerySet[TrainingRun]:
    """Every run, newest first, with its current job."""
    return TrainingRun.objects.select_related("job", "created_by")


def run_get(run_id: int) -> TrainingRun | None:
    """One run with its current job, or None."""
    return runs_list().filter(pk=run_id).first()


def run_for_job(job_id: int) -> TrainingRun | None:
    """The run a training job belongs to (from the job's params)."""
    run_id = Job.objects.filter(pk=job_id).values_list("params__run_id", flat=True).first()
    return run_get(int(run_id)) if run_id is not None else None


def run_jobs(run: TrainingRun) -> QuerySet[Job]:
    """Every job (start, resumes, index builds) of a run, newest first."""
    return Job.objects.filter(kind=Job.Kind.TRAIN, params__run_id=run.pk).order_by("-created_at", "-id")


def run_metrics(run: TrainingRun, max_points: int = MAX_POINTS) -> dict[str, list[Any]]:
    """The metric history as columns (step, losses, ...), thinned evenly to at most max_points rows."""
    qs = TrainingMetric.objects.filter(run=run).order_by("step")
    count = qs.count()
    rows = list(qs.values_list(*SERIES))
    if count > max_points:
        stride = -(-count // max_points)
        # Keep the newest row so the chart always reaches the current step.
        rows = rows[::stride] if (count - 1) % stride == 0 else [*rows[::stride], rows[-1]]
    return _columns(rows)


def run_metrics_after(run: TrainingRun, step: int, limit: int) -> dict[str, list[Any]]:
    """Metric rows newer than `step` as columns, oldest first, at most `limit` of them (not thinned)."""
    qs = TrainingMetric.objects.filter(run=run, step__gt=step).order_by("step")
    return _columns(list(qs.values_list(*SERIES)[:limit]))


def metric_mark(run: TrainingRun, step: int) -> int:
    """How many metric rows a run has at or below `step` (changes only when a resumed run rewinds)."""
    return TrainingMetric.objects.filter(run=run, step__lte=step).count()


def _columns(rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(SERIES)}


def run_fd_history(run: TrainingRun) -> dict[str, list[Any]]:
    """Every FD-Lite measurement: step, value and the resolution it was measured at."""
    rows = TrainingMetric.objects.filter(run=run, fd_lite__isnull=False).order_by("step")
    values = list(rows.values_list("step", "fd_lite", "resolution"))
    return {
        "step": [r[0] for r in values],
        "fd_lite": [r[1] for r in values],
        "resolution": [r[2] for r in values],
    }


def sample_url(sample: TrainingSample) -> str:
    """URL of a sample grid PNG (served to admins only)."""
    return reverse("training:sample", kwargs={"run_id": sample.run_id, "step": sample.step})


def run_samples(run: TrainingRun) -> list[dict[str, Any]]:
    """Every sample grid of a run, oldest first."""
    return [
        {"step": s.step, "resolution": s.resolution, "alpha": s.alpha, "url": sample_url(s)}
        for s in TrainingSample.objects.filter(run=run).order_by("step")
    ]


def sample_get(run_id: int, step: int) -> TrainingSample | None:
    """The sample grid a run wrote after `step` steps."""
    return TrainingSample.objects.filter(run_id=run_id, step=step).first()


def room_choices() -> list[str]:
    """Room tags present on trainable photos (for the data choice)."""
    qs = Photo.objects.filter(status__in=TRAINABLE, duplicate_of__isnull=True).exclude(room_tag="")
    return sorted(set(qs.values_list("room_tag", flat=True)))


def _photos(room: str, max_photo_id: int | None) -> QuerySet[Photo]:
    qs = Photo.objects.filter(status__in=TRAINABLE, duplicate_of__isnull=True).exclude(image_path="")
    if room:
        qs = qs.filter(room_tag=room)
    if max_photo_id is not None:
        qs = qs.filter(pk__lte=max_photo_id)
    return qs.order_by("id")


def photos_frozen(room: str = "") -> tuple[int, int]:
    """(count, highest id) of the photos a new run on stored photos would train on."""
    ids = list(_photos(room, None).values_list("id", flat=True))
    return len(ids), (ids[-1] if ids else 0)


def data_paths(data: dict[str, Any]) -> list[Path]:
    """Image files of a run's data choice (stored photos up to the id frozen at creation, or a folder)."""
    if data.get("source") == "folder":
        folder = Path(str(data["path"]))
        return list_images(folder) if folder.is_dir() else []
    rows = _photos(str(data.get("room", "")), data.get("max_photo_id"))
    paths = [storage.media_path(rel) for rel in rows.values_list("image_path", flat=True)]
    return [p for p in paths if p.is_file()]  # a photo deleted since the run began is skipped
