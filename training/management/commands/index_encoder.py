"""Index stored photos with a training run's encoder: python manage.py index_encoder RUN_ID [--inline]."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flatsite.jobs.models import Job
from search.models import IndexVersion
from training import services
from training.management.commands._progress import wait_for_job
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Register a run's GAN encoder, extract every stored photo with it and build its index."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)
        parser.add_argument("--inline", action="store_true", help="extract in this process, not in a worker")
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait for a worker")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not TrainingRun.objects.filter(pk=opts["run_id"]).exists():
            raise CommandError(f"no training run #{opts['run_id']}")
        try:
            job = services.run_index_start(opts["run_id"], enqueue=not opts["inline"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if opts["inline"]:
            from training import job as runner

            job = runner.job_run_inline(job.pk, echo=self.stdout.write)
        else:
            job = wait_for_job(job.pk, self.stdout.write, opts["timeout"])
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"indexing job #{job.pk} {job.status}: {job.error}")
        encoder = job.result.get("encoder", "")
        live = IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).first()
        self.stdout.write(f"encoder: {encoder}; photos extracted: {job.result.get('extracted', 0)}")
        self.stdout.write(f"index: {live or 'none (no photos to index)'}")
