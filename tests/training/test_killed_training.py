"""A training process SIGKILLed at a random step resumes from its last checkpoint (real processes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from flatsite.jobs import services as jobs
from search.models import Job
from tests.flatsite.jobs.sending import task_send_replace
from tests.processes import ROOT, database_url, wait_until
from training import artifacts
from training.ml import config_from_dict
from training.ml.checkpoint import list_checkpoints
from training.models import TrainingMetric, TrainingRun

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
STEPS = 150


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DEBUG"))}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="flatsite.settings",
        FLATSITE_ALLOW_DEV_KEY="1",
        FLATSITE_DATA_DIR=str(settings.DATA_DIR),
        CHANNEL_BACKEND="memory",  # inline training: no page watches it
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _exited(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")


def _newest_checkpoint(run_id: int) -> int:
    found = list_checkpoints(artifacts.checkpoint_dir(run_id))
    return found[-1][0] if found else 0


def test_training_killed_at_a_random_step_resumes_from_its_last_checkpoint(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delay_s = float(np.random.default_rng(7).uniform(0.2, 1.5))  # seeded "random" moment after a checkpoint
    first_log = tmp_path / "first.log"
    args = [
        "train_gan",
        "--preset",
        "tiny-test",
        "--data-dir",
        str(photo_dir),
        "--steps",
        str(STEPS),
        "--inline",
    ]
    proc = _spawn([*args, "--device", "cpu"], first_log)
    try:
        found = wait_until(
            lambda: re.search(r"run #(\d+):", first_log.read_text()) or _exited(proc, first_log),
            timeout=120,
            what="the run to start",
        )
        run_id = int(found.group(1))
        wait_until(lambda: _newest_checkpoint(run_id) > 0 or proc.poll() is not None, timeout=120)
        time.sleep(delay_s)
        assert proc.poll() is None, f"training ended before the kill:\n{first_log.read_text()[-3000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    run = TrainingRun.objects.select_related("job").get(pk=run_id)
    stepped = [int(s) for s in re.findall(r"step (\d+)/", first_log.read_text())]
    killed_step = max([run.step, _newest_checkpoint(run_id), *stepped])
    checkpoint_every = config_from_dict(run.config).checkpoint_every
    assert run.job is not None and run.job.status == Job.Status.RUNNING  # what a dead process leaves
    assert 0 < killed_step < STEPS

    # The reconciler notices the silent job and queues it again (the message itself is not needed here).
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=run.job.heartbeat_at - _timeout())
    task_send_replace(monkeypatch, Job.Kind.TRAIN, lambda job_id: None)
    assert jobs.jobs_reconcile()["requeued"] == 1
    second_log = tmp_path / "second.log"
    code = (
        f"from training import job as runner; runner.job_run_inline({run.job_id}, device='cpu', echo=print)"
    )
    resumed = _spawn(["shell", "-c", code], second_log)
    assert resumed.wait(timeout=200) == 0, second_log.read_text()[-3000:]

    text = second_log.read_text()
    match = re.search(r"resuming from \S*step_(\d+)\.pt", text)
    assert match is not None, text[-3000:]
    resumed_from = int(match.group(1))
    assert resumed_from > 0
    assert resumed_from >= killed_step - checkpoint_every, (resumed_from, killed_step, checkpoint_every)
    run.refresh_from_db()
    assert run.job is not None and run.job.status == Job.Status.SUCCEEDED
    assert run.step == STEPS
    steps = list(TrainingMetric.objects.filter(run=run).values_list("step", flat=True))
    assert len(steps) == len(set(steps))  # steps trained twice are recorded once


def _timeout() -> Any:
    from datetime import timedelta

    return timedelta(seconds=settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT + 1)
