"""Training runs: start, resume, cancel, record progress, finish, and register a run's encoder."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from flatsite.core import storage
from flatsite.jobs import services as jobs
from flatsite.jobs.models import Job
from search.ml.encoders.registry import list_encoders, register_encoder
from training import artifacts, events, presets, selectors
from training.ml import config_from_dict, config_to_dict, total_steps
from training.ml.checkpoint import checkpoint_name, list_checkpoints
from training.ml.encoder_adapter import build_gan_encoder
from training.models import TrainingMetric, TrainingRun, TrainingSample

log = logging.getLogger(__name__)
MIN_PHOTOS = 2
ENCODER_NAME = re.compile(r"^gan-run-(\d+)-step-(\d+)$")


@dataclass
class Progress:
    """What a worker reports in one write: new metric rows, live values, maybe a sample grid or checkpoint."""

    step: int
    live: dict[str, Any]
    metrics: list[dict[str, Any]]
    sample: tuple[int, int, float, bytes] | None = None  # (step, resolution, alpha, PNG bytes)
    checkpoint: Path | None = None


def data_choice_photos(room: str = "") -> dict[str, Any]:
    """Train on the stored photos (optionally one room type) that exist now; later uploads are not added."""
    count, max_id = selectors.photos_frozen(room)
    if count < MIN_PHOTOS:
        raise ValidationError(f"need at least {MIN_PHOTOS} processed photos to train on, found {count}")
    return {"source": "photos", "room": room, "max_photo_id": max_id, "count": count}


def data_choice_folder(folder: Path) -> dict[str, Any]:
    """Train on the images of a server folder (command line only)."""
    choice = {"source": "folder", "path": str(Path(folder).resolve())}
    count = len(selectors.data_paths(choice))
    if count < MIN_PHOTOS:
        raise ValidationError(f"need at least {MIN_PHOTOS} images in {folder}, found {count}")
    return {**choice, "count": count}


def _new_job(run: TrainingRun, user: Any, action: str, enqueue: bool, total: int) -> Job:
    job = jobs.job_create(Job.Kind.TRAIN, user=user, params={"run_id": run.pk, "action": action}, total=total)
    if enqueue:
        jobs.job_enqueue(job)
    return job


def _publish(run_id: int) -> None:
    transaction.on_commit(lambda: events.run_changed(run_id))


def run_start(
    *, preset: str, data: dict[str, Any], user: Any = None, steps: int | None = None, name: str = "",
    options: dict[str, Any] | None = None, enqueue: bool = True,
) -> TrainingRun:  # fmt: skip
    """Create a run from a preset (options: other GanConfig fields) and queue its job unless inline."""
    try:
        chosen = presets.run_preset(preset)
    except KeyError as exc:
        raise ValidationError(str(exc.args[0])) from exc
    if steps is not None and steps < 1:
        raise ValidationError("steps must be at least 1")
    try:
        cfg = chosen.config(**(options or {}), data=data, **({"total_steps": steps} if steps else {}))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"invalid training options: {exc}") from exc
    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name[:100], preset=preset, config=config_to_dict(cfg), data=data, created_by=user,
            total_steps=total_steps(cfg),
        )  # fmt: skip
        run.job = _new_job(run, user, "train", enqueue, run.total_steps)
        run.save(update_fields=["job"])
        _publish(run.pk)
    return run


def run_resume(
    run_id: int, *, user: Any = None, steps: int | None = None, enqueue: bool = True
) -> TrainingRun:
    """Continue a stopped run from its last checkpoint, optionally to a new total of steps."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update(of=("self",)).select_related("job").get(pk=run_id)
        if run.is_active:
            raise ValidationError(f"run #{run.pk} is still {run.status}; cancel it first")
        target = steps if steps is not None else run.total_steps
        if target < run.step:
            raise ValidationError(f"steps must be at least the {run.step} steps already done")
        if run.checkpoint_step >= target:
            raise ValidationError(f"run #{run.pk} has done all {target} steps; ask for more steps")
        cfg = config_from_dict(run.config)
        cfg.total_steps = target
        run.config, run.total_steps = config_to_dict(cfg), target
        run.job = _new_job(run, user, "train", enqueue, target)
        run.save(update_fields=["config", "total_steps", "job", "updated_at"])
        _publish(run.pk)
    return run


def run_index_start(run_id: int, *, user: Any = None, enqueue: bool = True) -> Job:
    """Queue a job that extracts every stored photo with the run's encoder and builds its index."""
    run = TrainingRun.objects.get(pk=run_id)
    if not list_checkpoints(artifacts.checkpoint_dir(run.pk)):
        raise ValidationError(f"run #{run.pk} has no checkpoint yet; train it first")
    with transaction.atomic():
        job = _new_job(run, user, "index", enqueue, 0)
    return job


def run_cancel(run_id: int) -> TrainingRun:
    """Ask the run's job to stop; the worker writes a checkpoint before it stops."""
    run = TrainingRun.objects.select_related("job").get(pk=run_id)
    if run.job_id is not None:
        jobs.job_cancel(run.job_id)
    events.run_changed(run.pk)
    return TrainingRun.objects.select_related("job").get(pk=run_id)


def _remove_files(relpaths: list[str]) -> None:
    for rel in relpaths:
        try:
            storage.media_path(rel).unlink(missing_ok=True)
        except (OSError, ValueError):
            log.warning("could not remove %s", rel, exc_info=True)


def run_begin(job_id: int, device: str) -> tuple[TrainingRun, Path | None]:
    """Prepare a claimed job: find the latest checkpoint and forget history recorded after it."""
    run = selectors.run_for_job(job_id)
    if run is None:
        raise ValueError(f"job {job_id} belongs to no training run")
    found = list_checkpoints(artifacts.checkpoint_dir(run.pk))
    step, checkpoint = found[-1] if found else (0, None)
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        # Steps after the checkpoint are trained again, so their old rows and grids would be duplicates.
        later = TrainingSample.objects.filter(run=run, step__gt=step)
        stale = list(later.values_list("path", flat=True))
        later.delete()
        TrainingMetric.objects.filter(run=run, step__gt=step).delete()
        run.step, run.checkpoint_step, run.device = step, step, device
        run.checkpoint_path = artifacts.checkpoint_relpath(checkpoint) if checkpoint else ""
        last_fd = TrainingMetric.objects.filter(run=run, fd_lite__isnull=False).order_by("-step").first()
        run.last_fd_lite = last_fd.fd_lite if last_fd else None
        run.save()
        transaction.on_commit(lambda: _remove_files(stale))
    message = f"resuming from step {step}" if checkpoint else "starting"
    jobs.job_progress(job_id, done=step, total=run.total_steps, message=message)
    events.run_changed(run.pk)
    return run, checkpoint


def run_record(run_id: int, job_id: int, progress: Progress) -> None:
    """Store a batch of progress (metric rows, live values, a sample grid, a checkpoint) and heartbeat."""
    sample_rel = ""
    if progress.sample is not None:
        # The file first: a row never points at a missing grid (a crash may leave an unlisted file).
        sample_rel = artifacts.sample_relpath(run_id, progress.sample[0])
        storage.write_atomic(storage.media_path(sample_rel), progress.sample[3])
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        rows = [TrainingMetric(run=run, **m) for m in progress.metrics]
        TrainingMetric.objects.bulk_create(rows, ignore_conflicts=True)
        if progress.sample is not None:
            step, res, alpha, _ = progress.sample
            TrainingSample.objects.update_or_create(
                run=run, step=step, defaults={"resolution": res, "alpha": alpha, "path": sample_rel}
            )
        for key, value in progress.live.items():
            setattr(run, key, value)
        run.step = min(max(progress.step, run.checkpoint_step), run.total_steps)
        if progress.checkpoint is not None:
            run.checkpoint_path = artifacts.checkpoint_relpath(progress.checkpoint)
            run.checkpoint_step = min(_step_of(progress.checkpoint), run.step)
        run.save()
    jobs.job_progress(job_id, done=run.step, total=run.total_steps, message=_describe(run))
    events.run_changed(run_id)


def _step_of(checkpoint: Path) -> int:
    match = re.search(r"step_(\d+)\.pt$", Path(checkpoint).name)
    if match is None:
        raise ValueError(f"not a checkpoint file name: {checkpoint}")
    return int(match.group(1))


def _describe(run: TrainingRun) -> str:
    fade = f" fade-in alpha={run.alpha:.2f}" if run.phase == "fade" else ""
    return f"{run.resolution}px{fade} · {run.images_per_s:.1f} images/s"


def run_end(job_id: int, *, status: str, result: dict[str, Any] | None = None, error: str = "") -> Job:
    """Finish a run's job (succeeded, cancelled or failed) and tell the watchers."""
    job = jobs.job_finish(job_id, status=status, result=result, error=error[:5000])
    run = selectors.run_for_job(job_id)
    if run is not None:
        events.run_changed(run.pk)
    return job


def run_register_encoder(run: TrainingRun) -> str:
    """Register the run's latest encoder as `gan-run-<id>-step-<n>` (weights pinned) and return the name."""
    found = list_checkpoints(artifacts.checkpoint_dir(run.pk))
    if not found:
        raise ValidationError(f"run #{run.pk} has no checkpoint yet")
    step, latest = found[-1]
    # A copy outside the pruned checkpoint folder: vectors indexed now and queries embedded later must
    # come from the same weights, even after the run trains on.
    pinned = _pinned_path(run.pk, step)
    if not pinned.is_file():
        pinned.parent.mkdir(parents=True, exist_ok=True)
        tmp = pinned.with_name(f".{pinned.name}.tmp")
        shutil.copyfile(latest, tmp)
        tmp.replace(pinned)
    name = f"gan-run-{run.pk}-step-{step}"
    _register(name, pinned)
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run.pk).update(encoder_name=name)
    run.encoder_name = name
    return name


def _pinned_path(run_id: int, step: int) -> Path:
    return artifacts.checkpoint_dir(run_id) / "encoders" / checkpoint_name(step)


def _register(name: str, checkpoint: Path) -> None:
    def status() -> tuple[bool, str]:
        return checkpoint.is_file(), f"GAN encoder checkpoint {checkpoint}"

    register_encoder(
        name, lambda device: build_gan_encoder(name, checkpoint, device), replace=True, status=status
    )


def encoder_ensure_registered(name: str) -> bool:
    """Register a `gan-run-<id>-step-<n>` encoder in this process if its pinned weights exist."""
    match = ENCODER_NAME.match(name)
    if match is None:
        return False
    if name in list_encoders():
        return True
    pinned = _pinned_path(int(match.group(1)), int(match.group(2)))
    if not pinned.is_file():
        return False
    _register(name, pinned)
    return True
