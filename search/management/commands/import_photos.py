"""Bulk import: python manage.py import_photos DIR [--listings CSV] [--inline] [--owner NAME]."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from flatsite.core import accounts, roles
from search.listings import imports
from search.listings.import_plan import ZIP_EXTENSIONS, ImportPlanError, plan_import, skipped_files
from search.listings.import_report import ReportRow, rows_finalise
from search.matching import features
from search.models import Job


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
        parser.add_argument(
            "--report", type=Path, default=None, help="CSV of every file's outcome (default var/imports/)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        root: Path = opts["directory"]
        try:
            plans = plan_import(root, opts["listings"])
        except ImportPlanError as exc:
            raise CommandError(str(exc)) from exc
        owner = self._owner(opts["owner"])
        skipped = skipped_files(root, plans, opts["listings"])
        total = sum(len(p.files) for p in plans)
        self.stdout.write(
            f"importing {total} files into {len(plans)} listings as '{owner.get_username()}'"
            + (f" ({len(skipped)} other files skipped)" if skipped else "")
        )
        started = time.monotonic()
        since = timezone.now()
        rows: list[ReportRow] = []
        with tqdm(total=total, unit="file", disable=None) as bar:

            def on_chunk(plan: Any, chunk: list[Path], result: Any) -> None:
                rows.extend(_rows(root, plan, chunk, result.outcomes))
                bar.update(len(chunk))

            results = imports.listings_import(plans, owner=owner, inline=opts["inline"], on_chunk=on_chunk)
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
        rows = rows_finalise(rows) + [ReportRow(_rel(root, s.path), "", "skipped", s.reason) for s in skipped]
        self._report(rows, opts["report"] or _default_report(), time.monotonic() - started)

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

    def _report(self, rows: list[ReportRow], path: Path, seconds: float) -> None:
        # Every file gets exactly one row in the report; every file not accepted also gets a line here.
        for row in rows:
            if row.outcome != "accepted":
                style = self.style.WARNING if row.outcome in ("rejected", "skipped") else str
                self.stdout.write(style(row.line()))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(REPORT_COLUMNS)
            writer.writerows((r.file, r.listing, r.outcome, r.detail, r.photo_id or "") for r in rows)
        counts = Counter(r.outcome for r in rows)
        rate = len(rows) / seconds if seconds > 0 else 0.0
        summary = ", ".join(f"{counts[k]} {k}" for k in ("accepted", "duplicate", "rejected", "skipped"))
        self.stdout.write(f"done in {seconds:.1f}s ({rate:.1f} files/s): {summary}; report: {path}")


REPORT_COLUMNS = ("file", "listing", "outcome", "detail", "photo_id")


def _default_report() -> Path:
    return Path(settings.DATA_DIR) / "imports" / f"import-{timezone.now():%Y%m%d-%H%M%S}.csv"


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _rows(root: Path, plan: Any, chunk: list[Path], outcomes: list[Any]) -> list[ReportRow]:
    """Report rows of one ingested batch; a zip's entries are named inside the zip."""
    by_name = {p.name: p for p in chunk}
    archive = chunk[0] if len(chunk) == 1 and chunk[0].suffix.lower() in ZIP_EXTENSIONS else None
    rows = []
    for o in outcomes:
        if archive is not None and o.name != archive.name:
            file = f"{_rel(root, archive)}/{o.name}"
        else:
            file = _rel(root, by_name.get(o.name, root / o.name))
        rows.append(ReportRow(file, plan.external_id, o.status, o.detail, o.photo_id))
    return rows
