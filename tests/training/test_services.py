"""Training services: starting, resuming, cancelling, recording progress, registering the encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from flatsite.core import storage
from flatsite.jobs import services as jobs
from search.ml.encoders.registry import list_encoders, load_encoder, unregister_encoder
from search.models import Job
from tests import images
from tests.training.conftest import stored_photo
from training import artifacts, selectors, services
from training import job as runner
from training.models import TrainingMetric, TrainingRun, TrainingSample

pytestmark = pytest.mark.django_db


def _tiny(photo_dir: Path, **kwargs: Any) -> TrainingRun:
    return services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), **kwargs)


def test_start_creates_a_run_with_a_queued_job_sent_on_commit(
    photo_dir: Path, admin_user: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run = _tiny(photo_dir, user=admin_user, name="first")
    assert run.job is not None
    assert (run.job.kind, run.job.status, run.job.total) == (Job.Kind.TRAIN, Job.Status.QUEUED, 15)
    assert run.job.params == {"run_id": run.pk, "action": "train"}
    assert sent == [run.job.pk]
    assert (run.total_steps, run.step, run.status, run.name) == (15, 0, "queued", "first")
    assert run.config["final_size"] == 16 and run.config["data"]["count"] == 6


def test_start_refuses_an_unknown_preset_bad_options_and_too_few_photos(
    photo_dir: Path, tmp_path: Path
) -> None:
    data = services.data_choice_folder(photo_dir)
    with pytest.raises(ValidationError, match="unknown preset"):
        services.run_start(preset="huge", data=data)
    with pytest.raises(ValidationError, match="invalid training options"):
        services.run_start(preset="tiny-test", data=data, options={"final_size": 12})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match="at least 2"):
        services.data_choice_folder(empty)
    with pytest.raises(ValidationError, match="at least 2"):
        services.data_choice_photos()
    assert not TrainingRun.objects.exists()


def test_stored_photo_choice_is_frozen_at_creation(stored_photos: list[Any]) -> None:
    choice = services.data_choice_photos("kitchen")
    assert (choice["source"], choice["count"], choice["max_photo_id"]) == ("photos", 3, stored_photos[2].pk)
    stored_photo(stored_photos[0].listing, 999, "kitchen")  # uploaded after the run was set up
    paths = selectors.data_paths(choice)
    assert [p.name for p in paths] == [Path(p.image_path).name for p in stored_photos[:3]]
    assert selectors.room_choices() == ["bedroom", "kitchen"]


def test_a_trained_run_has_every_step_its_samples_and_a_final_checkpoint(photo_dir: Path) -> None:
    run = _tiny(photo_dir, enqueue=False)
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    run.refresh_from_db()
    assert (job.status, job.done, job.total, job.worker) == (Job.Status.SUCCEEDED, 15, 15, "inline")
    assert list(run.metrics.values_list("step", flat=True)) == list(range(1, 16))
    assert list(run.metrics.values_list("resolution", flat=True))[::3] == [4, 8, 8, 16, 16]
    samples = list(TrainingSample.objects.filter(run=run))
    assert [s.step for s in samples] == [4, 8, 12, 15]
    assert all(storage.media_path(s.path).is_file() for s in samples)
    assert (run.step, run.checkpoint_step, run.resolution, run.device) == (15, 15, 16, "cpu")
    assert artifacts.checkpoint_abspath(run.checkpoint_path).name == "step_00000015.pt"
    assert job.result["steps"] == 15 and job.result["run_id"] == run.pk


def test_resume_refuses_an_active_run_and_a_finished_one_without_more_steps(photo_dir: Path) -> None:
    run = _tiny(photo_dir, enqueue=False)
    with pytest.raises(ValidationError, match="still queued"):
        services.run_resume(run.pk, enqueue=False)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    with pytest.raises(ValidationError, match="has done all 15 steps"):
        services.run_resume(run.pk, enqueue=False)
    with pytest.raises(ValidationError, match="at least the 15 steps"):
        services.run_resume(run.pk, steps=10, enqueue=False)
    resumed = services.run_resume(run.pk, steps=18, enqueue=False)
    assert resumed.job_id != run.job_id and resumed.total_steps == 18 and resumed.config["total_steps"] == 18


def test_cancel_of_a_queued_run_stops_it_before_it_starts(photo_dir: Path, sent: list[int]) -> None:
    run = _tiny(photo_dir)
    run = services.run_cancel(run.pk)
    assert run.status == Job.Status.CANCELLED and not run.is_active
    assert run.job_id is not None and jobs.job_claim(run.job_id) is None


def test_recorded_progress_is_stored_once_and_moves_the_job(photo_dir: Path) -> None:
    run = _tiny(photo_dir, enqueue=False)
    assert run.job_id is not None
    jobs.job_claim(run.job_id)
    row = {"resolution": 4, "alpha": 1.0, "loss_g": 1.0, "loss_d": -1.0, "gp": 0.1, "loss_enc": 2.0}
    metrics = [{"step": s, "images_per_s": 10.0, "fd_lite": None, **row} for s in (1, 2, 3)]
    png = artifacts.grid_png(np.zeros((4, 4, 4, 3), dtype=np.uint8))
    progress = services.Progress(3, {"resolution": 4, "phase": "stable"}, metrics, (3, 4, 1.0, png))
    services.run_record(run.pk, run.job_id, progress)
    services.run_record(run.pk, run.job_id, progress)  # a repeated batch adds nothing twice
    run.refresh_from_db()
    assert TrainingMetric.objects.filter(run=run).count() == 3
    assert (run.step, run.resolution, run.job.done if run.job else None) == (3, 4, 3)
    sample = TrainingSample.objects.get(run=run)
    assert storage.media_path(sample.path).read_bytes() == png


def test_registered_encoder_embeds_photos_with_pinned_weights(photo_dir: Path) -> None:
    run = _tiny(photo_dir, enqueue=False)
    with pytest.raises(ValidationError, match="no checkpoint"):
        services.run_register_encoder(run)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    name = services.run_register_encoder(run)
    assert name == f"gan-run-{run.pk}-step-15" and name in list_encoders()
    assert (artifacts.checkpoint_dir(run.pk) / "encoders" / "step_00000015.pt").is_file()
    vectors = load_encoder(name, "cpu").embed_images([images.picture(i, (40, 30)) for i in range(3)])
    assert vectors.shape == (3, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    unregister_encoder(name)
    assert services.encoder_ensure_registered(name) and name in list_encoders()
    assert not services.encoder_ensure_registered(f"gan-run-{run.pk}-step-3")  # no such pinned weights
    assert TrainingRun.objects.get(pk=run.pk).encoder_name == name
    unregister_encoder(name)
