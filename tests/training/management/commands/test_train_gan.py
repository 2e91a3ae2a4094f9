"""train_gan: start or resume a run from the command line, printing progress and the result."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from search.models import Job
from training import artifacts
from training.models import TrainingRun


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command("train_gan", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_inline_run_prints_progress_then_run_id_checkpoint_and_fd_lite(photo_dir: Path) -> None:
    out = _call("--preset", "tiny-test", "--inline", "--data-dir", str(photo_dir), "--device", "cpu")
    run = TrainingRun.objects.get()
    lines = out.splitlines()
    assert lines[0] == f"run #{run.pk}: tiny-test, 15 steps, job #{run.job_id}"
    assert any(line.startswith("step ") and "/15 · " in line and " img/s" in line for line in lines)
    checkpoint = artifacts.checkpoint_abspath(run.checkpoint_path)
    assert lines[-3:] == [
        f"run id: {run.pk} (succeeded, step 15/15)",
        f"checkpoint: {checkpoint}",
        "FD-Lite: not measured",  # the tiny preset measures no FD-Lite
    ]
    assert checkpoint.is_file()


@pytest.mark.django_db
def test_resume_continues_a_run_to_more_steps(photo_dir: Path) -> None:
    _call(
        "--preset", "tiny-test", "--inline", "--data-dir", str(photo_dir), "--steps", "6", "--device", "cpu"
    )
    run = TrainingRun.objects.get()
    out = _call("--resume", str(run.pk), "--steps", "9", "--inline", "--device", "cpu")
    run.refresh_from_db()
    assert f"run #{run.pk}: resuming from " in out and "step_00000006.pt" in out
    assert out.splitlines()[-3] == f"run id: {run.pk} (succeeded, step 9/9)"
    assert list(run.metrics.values_list("step", flat=True)) == list(range(1, 10))


@pytest.mark.django_db(transaction=True)
def test_queued_run_is_waited_for_and_reported(photo_dir: Path) -> None:
    # Eager Celery (test settings) runs the task when the run's transaction commits, as a worker would.
    out = _call("--preset", "tiny-test", "--data-dir", str(photo_dir), "--steps", "3")
    run = TrainingRun.objects.get()
    assert f"job #{run.job_id} succeeded: 3/3" in out
    assert out.splitlines()[-3] == f"run id: {run.pk} (succeeded, step 3/3)"
    assert Job.objects.get(pk=run.job_id).worker not in ("", "inline")


@pytest.mark.django_db
def test_bad_arguments_are_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--preset is required"):
        _call("--inline")
    with pytest.raises(CommandError, match="no training run #99"):
        _call("--resume", "99")
    with pytest.raises(CommandError, match="at least 2 images"):
        _call("--preset", "tiny-test", "--data-dir", str(tmp_path))
    with pytest.raises(CommandError, match="at least 2 processed photos"):
        _call("--preset", "cpu-smoke")


@pytest.mark.django_db
def test_a_failed_run_exits_with_an_error(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training import job as runner

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no space left on device (simulated)")

    monkeypatch.setattr(runner, "train", broken)
    with pytest.raises(CommandError, match="failed: training failed: no space left"):
        _call("--preset", "tiny-test", "--inline", "--data-dir", str(photo_dir))
