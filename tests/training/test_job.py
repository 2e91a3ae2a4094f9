"""Running training jobs: cancel writes a checkpoint, resume continues from it, FD-Lite and failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search.models import Job
from training import artifacts, selectors, services
from training import job as runner
from training.ml import StepStats
from training.ml.checkpoint import list_checkpoints
from training.models import TrainingMetric, TrainingRun

pytestmark = pytest.mark.django_db


def _tiny(photo_dir: Path, **kwargs: Any) -> TrainingRun:
    data = services.data_choice_folder(photo_dir)
    return services.run_start(preset="tiny-test", data=data, enqueue=False, **kwargs)


def hook_train(monkeypatch: pytest.MonkeyPatch, at_step: Callable[[StepStats], None]) -> list[Any]:
    """Wrap training.ml.train so at_step runs after each step's own callback; returns the resume args seen."""
    real = runner.train
    resumed: list[Any] = []

    def train(*args: Any, on_step: Callable[[StepStats], None], **kwargs: Any) -> Any:
        resumed.append(kwargs.get("resume"))

        def both(st: StepStats) -> None:
            on_step(st)
            at_step(st)

        return real(*args, on_step=both, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    return resumed


def _steps(run: TrainingRun) -> list[int]:
    return list(TrainingMetric.objects.filter(run=run).values_list("step", flat=True))


def test_cancel_mid_run_writes_a_checkpoint_at_the_step_reached(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _tiny(photo_dir)

    def cancel_at_2(st: StepStats) -> None:
        if st.step == 2:
            services.run_cancel(run.pk)  # what the page's cancel button does, from another request

    hook_train(monkeypatch, cancel_at_2)
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    run.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    # tiny-test checkpoints every 5 steps: the only checkpoint is the one the cancel wrote.
    assert [s for s, _ in list_checkpoints(artifacts.checkpoint_dir(run.pk))] == [2]
    assert (run.step, run.checkpoint_step, run.checkpoint_path) == (2, 2, f"{run.pk}/step_00000002.pt")
    assert _steps(run) == [1, 2]
    assert job.result["steps"] == 2 and not run.is_active


def test_resume_after_cancel_continues_from_the_checkpoint_to_the_end(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _tiny(photo_dir)
    resumed = hook_train(monkeypatch, lambda st: services.run_cancel(run.pk) if st.step == 7 else None)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    run = services.run_resume(run.pk, enqueue=False)
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    run.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert resumed[0] is None and resumed[1] is not None and resumed[1].name == "step_00000007.pt"
    assert _steps(run) == list(range(1, 16))  # no gap and no step twice
    assert (run.step, run.checkpoint_step) == (15, 15)
    assert selectors.run_jobs(run).count() == 2


def test_fd_lite_is_measured_on_schedule_and_recorded(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def colour_features(x: torch.Tensor) -> np.ndarray:
        # Cheap stand-in for EfficientNet-Lite: per-channel means and stds, (N, 6).
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1).numpy()

    monkeypatch.setattr(runner.quality, "fd_feature_fn", lambda device=None: colour_features)
    run = _tiny(photo_dir, options={"fd_every": 5, "fd_samples": 4})
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    run.refresh_from_db()
    fd = selectors.run_fd_history(run)
    assert fd["step"] == [5, 10, 15] and fd["resolution"] == [8, 16, 16]
    assert all(v is not None and v >= 0 for v in fd["fd_lite"])
    assert run.last_fd_lite == fd["fd_lite"][-1] == job.result["fd_lite"]


def test_a_crash_in_training_fails_the_job_and_keeps_the_last_checkpoint(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(st: StepStats) -> None:
        if st.step == 6:
            raise RuntimeError("CUDA out of memory (simulated)")

    hook_train(monkeypatch, explode)
    run = _tiny(photo_dir)
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    run.refresh_from_db()
    assert job.status == Job.Status.FAILED and "out of memory" in job.error
    assert (run.checkpoint_step, run.step) == (5, 6)
    assert not run.is_active  # so the admin can resume it


def test_a_run_whose_photos_vanished_fails_with_a_clear_error(photo_dir: Path) -> None:
    run = _tiny(photo_dir)
    for path in photo_dir.iterdir():
        path.unlink()
    assert run.job_id is not None
    job = runner.job_run_inline(run.job_id, device="cpu")
    assert job.status == Job.Status.FAILED and "only 0 photos" in job.error


def test_recorder_thins_metric_rows_on_long_runs_but_keeps_fd_and_last_steps(photo_dir: Path) -> None:
    run = _tiny(photo_dir, steps=runner.METRIC_ROWS * 3)
    recorder = runner.Recorder(run, run.job_id or 0, flush_s=1e9)
    base = {"resolution": 4, "alpha": 1.0, "phase": "stable", "loss_g": 0.0, "loss_d": 0.0, "gp": 0.0}
    for step in (1, 2, 3, 4, 5, 6):
        fd = 1.5 if step == 5 else None
        recorder(
            StepStats(step=step, total_steps=6, loss_enc=0.0, images_per_s=1.0, eta_s=0.0, fd_lite=fd, **base)
        )
    recorder.flush()
    assert recorder.metric_every == 3
    assert _steps(run) == [3, 5, 6]  # every 3rd step, the FD-Lite step and the last step
