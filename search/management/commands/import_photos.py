"""Bulk import: python manage.py import_photos DIR [--listings CSV] [--inline] [--owner NAME]."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from search import roles
from search.importing import ImportPlanError, plan_import
from search.models import Job
from search.services import accounts, features, imports
from search.uploads import UploadRejected


class Command(BaseCommand):
    help = (
        "Import a folder of listing photos (one listing per subfolder, a listings CSV, or the Houses layout)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--listings", type=Path, default=None, help="CSV: file,listing,title,...,room")
        parser.add_argument("--inline", action="store_true", help="process here instead of in a worker")
        parser.add_argument("--owner", default="importer", help="agent account owning the listings")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for workers")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            plans = plan_import(opts["directory"], opts["listings"])
        except ImportPlanError as exc:
            raise CommandError(str(exc)) from exc
        owner = self._owner(opts["owner"])
        total = sum(len(p.files) for p in plans)
        self.stdout.write(f"importing {total} files into {len(plans)} listings as '{owner.get_username()}'")
        started = time.monotonic()
        since = timezone.now()
        outcomes: Counter[str] = Counter()
        with tqdm(total=total, unit="photo", disable=None) as bar:

            def on_listing(plan: Any, result: Any) -> None:
                outcomes.update(o.status for o in result.outcomes)
                bar.update(len(plan.files))

            try:
                results = imports.listings_import(
                    plans, owner=owner, inline=opts["inline"], on_listing=on_listing
                )
            except UploadRejected as exc:
                raise CommandError(str(exc)) from exc
        job_ids = [r.job.pk for r in results if r.job is not None]
        if opts["inline"]:
            self.stdout.write("extracting features and indexing (inline)")
            extract = features.extract_inline(owner)
            self.stdout.write(
                f"extraction: {extract.status} {extract.result.get('extracted', extract.error)}"
            )
        else:
            self._wait(job_ids, opts["timeout"])
            self._wait_extraction(since, opts["timeout"])
        self._summary(job_ids, outcomes, results, time.monotonic() - started)

    def _owner(self, username: str) -> Any:
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            if not roles.can(user, roles.UPLOAD):
                raise CommandError(
                    f"user {username!r} may not upload photos (needs the realtor or admin role)"
                )
            return user
        accounts.roles_setup()
        return accounts.user_create(username=username, password=None, role=roles.REALTOR)

    def _wait(self, job_ids: list[int], timeout: float) -> None:
        jobs = Job.objects.filter(pk__in=job_ids)
        goal = sum(j.total for j in jobs)
        deadline = time.monotonic() + timeout
        with tqdm(total=goal, unit="photo", desc="processing", disable=None) as bar:
            while time.monotonic() < deadline:
                done = sum(j.done for j in jobs.all())
                bar.update(done - bar.n)
                if not jobs.exclude(status__in=Job.FINAL_STATES).exists():
                    return
                time.sleep(0.5)
        raise CommandError("timed out waiting for workers (is a Celery worker running? or use --inline)")

    def _wait_extraction(self, since: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = Job.objects.filter(kind=Job.Kind.EXTRACT, created_at__gte=since).exclude(
            status__in=Job.FINAL_STATES
        )
        while pending.exists():
            if time.monotonic() > deadline:
                raise CommandError("timed out waiting for feature extraction")
            time.sleep(1)
        self.stdout.write("features extracted and indexed")

    def _summary(
        self, job_ids: list[int], outcomes: Counter[str], results: list[Any], seconds: float
    ) -> None:
        states: Counter[str] = Counter()
        for job in Job.objects.filter(pk__in=job_ids):
            states.update(job.result.get("summary", {}))
        rejected = [(o.name, o.detail) for r in results for o in r.outcomes if o.status == "rejected"]
        for name, why in rejected[:20]:
            self.stdout.write(self.style.WARNING(f"rejected {name}: {why}"))
        count = sum(outcomes.values())
        rate = count / seconds if seconds > 0 else 0.0
        self.stdout.write(
            f"done in {seconds:.1f}s ({rate:.1f} photos/s): upload {dict(outcomes)}; processed {dict(states)}"
        )
