"""Start or resume a GAN training run: python manage.py train_gan --preset NAME [--steps N] [--inline]."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flatsite.jobs.models import Job
from training import artifacts, presets, selectors, services
from training.management.commands._progress import wait_for_job
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Start (or with --resume, continue) a GAN encoder training run; prints progress and the result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=sorted(presets.RUN_PRESETS), help="required unless --resume")
        parser.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
        parser.add_argument("--inline", action="store_true", help="train in this process, not in a worker")
        parser.add_argument("--resume", type=int, default=None, metavar="RUN_ID", help="continue this run")
        parser.add_argument("--data-dir", type=Path, default=None, help="train on this folder's images")
        parser.add_argument("--room", default="", help="only stored photos with this room tag")
        parser.add_argument("--name", default="")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA if available)")
        parser.add_argument(
            "--timeout", type=float, default=7 * 24 * 3600, help="seconds to wait for a worker"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            run = self._run(opts)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        assert run.job_id is not None
        self.stdout.write(f"run #{run.pk}: {run.preset}, {run.total_steps} steps, job #{run.job_id}")
        if opts["inline"]:
            job = self._inline(run.job_id, opts["device"])
        else:
            job = wait_for_job(run.job_id, self.stdout.write, opts["timeout"])
        self._summary(run.pk, job)

    def _run(self, opts: dict[str, Any]) -> TrainingRun:
        enqueue = not opts["inline"]
        if opts["resume"] is not None:
            if not TrainingRun.objects.filter(pk=opts["resume"]).exists():
                raise CommandError(f"no training run #{opts['resume']}")
            return services.run_resume(opts["resume"], steps=opts["steps"], enqueue=enqueue)
        if not opts["preset"]:
            raise CommandError("--preset is required when not resuming")
        if opts["data_dir"] is not None:
            data = services.data_choice_folder(opts["data_dir"])
        else:
            data = services.data_choice_photos(opts["room"])
        return services.run_start(
            preset=opts["preset"], data=data, steps=opts["steps"], name=opts["name"], enqueue=enqueue
        )

    def _inline(self, job_id: int, device: str | None) -> Job:
        from training import job as runner  # torch loads only when training here

        # First Ctrl-C: cancel, so the loop stops after the current step and writes a checkpoint.
        def cancel(signum: int, frame: FrameType | None) -> None:
            self.stderr.write("cancelling after the current step (Ctrl-C again to abort)")
            signal.signal(signal.SIGINT, previous)
            run = selectors.run_for_job(job_id)
            if run is not None:
                services.run_cancel(run.pk)

        previous = signal.signal(signal.SIGINT, cancel)
        try:
            return runner.job_run_inline(job_id, device=device, echo=self.stdout.write)
        finally:
            signal.signal(signal.SIGINT, previous)

    def _summary(self, run_id: int, job: Job) -> None:
        run = TrainingRun.objects.get(pk=run_id)
        checkpoint = str(artifacts.checkpoint_abspath(run.checkpoint_path)) if run.checkpoint_path else "none"
        fd = f"{run.last_fd_lite:.3f}" if run.last_fd_lite is not None else "not measured"
        self.stdout.write(f"run id: {run.pk} ({job.status}, step {run.step}/{run.total_steps})")
        self.stdout.write(f"checkpoint: {checkpoint}")
        self.stdout.write(f"FD-Lite: {fd}")
        if job.status == Job.Status.FAILED:
            raise CommandError(f"run #{run.pk} failed: {job.error}")
