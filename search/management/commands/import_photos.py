"""Bulk import: manage.py import_photos DIR [--listings CSV] [--inline] [--owner NAME] [--report PATH]."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from flatsite.core import accounts, roles
from search.listings import imports
from search.listings.import_plan import (
    ZIP_EXTENSIONS,
    ImportPlanError,
    PlanItem,
    PlannedFile,
    Skipped,
    count_files,
    plan_stream,
)
from search.listings.import_report import (
    FORMATS,
    OUTCOMES,
    ReportRow,
    ReportSpool,
    report_format,
    report_write,
)
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
            "--report",
            type=Path,
            default=None,
            help="every file's outcome (default var/imports/; .json: JSON)",
        )
        parser.add_argument(
            "--report-format", choices=FORMATS, default=None, help="csv or json (default: by suffix)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        root: Path = opts["directory"]
        try:
            items = plan_stream(root, opts["listings"])
        except ImportPlanError as exc:
            raise CommandError(str(exc)) from exc
        owner = self._owner(opts["owner"])
        try:
            total = count_files(root)
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename or root}: {exc.strerror or exc}") from exc
        self.stdout.write(f"importing the {total} files of {root} as '{owner.get_username()}'")
        started, since = time.monotonic(), timezone.now()
        spool = ReportSpool()
        try:
            job_ids = self._import(root, items, owner, opts["inline"], spool, total)
            if isinstance(job_ids, str):
                self._finish(spool, opts, started, stopped=job_ids)  # raises CommandError
                return
            if opts["inline"]:
                self.stdout.write("extracting features and indexing (inline)")
                extract = features.extract_inline(owner)
                self.stdout.write(
                    f"extraction: {extract.status} {extract.result.get('extracted', extract.error)}"
                )
            else:
                self._wait(job_ids or [], opts["timeout"])
                self._wait_extraction(since, opts["timeout"])
            self._finish(spool, opts, started, stopped="")
        finally:
            spool.close()

    def _import(
        self, root: Path, items: Iterator[PlanItem], owner: Any, inline: bool, spool: ReportSpool, total: int
    ) -> list[int] | str:
        """Stream the plan into chunked jobs under one progress bar; why it stopped early, if it did."""
        with tqdm(total=total, unit="file", disable=None) as bar:

            def planned() -> Iterator[PlannedFile]:
                for item in items:
                    if isinstance(item, Skipped):
                        spool.add([ReportRow(_rel(root, item.path), "", "skipped", item.reason)])
                        bar.update(1)
                    else:
                        yield item

            def on_chunk(chunk: imports.Chunk, result: Any) -> None:
                spool.add(_rows(root, chunk, result.outcomes))
                bar.update(len(chunk.files))

            try:
                return imports.listings_import(planned(), owner=owner, inline=inline, on_chunk=on_chunk)
            except ImportPlanError as exc:
                raise CommandError(str(exc)) from exc
            except KeyboardInterrupt:
                return "interrupted"
            except OSError as exc:  # a folder that became unreadable mid-walk: report what was done
                return f"stopped: cannot read {exc.filename or root}: {exc.strerror or exc}"

    def _finish(self, spool: ReportSpool, opts: dict[str, Any], started: float, stopped: str) -> None:
        """Write the report of every file so far and the summary line; stopping early is an error."""
        path = opts["report"] or _default_report(opts["report_format"])
        fmt = report_format(path, opts["report_format"])
        printed = Counter[str]()

        def on_row(row: ReportRow) -> None:
            # Every file not accepted gets a line here too (up to a point: the report has them all).
            if row.outcome != "accepted":
                printed["rows"] += 1
                if printed["rows"] <= PRINTED_ROWS:
                    style = self.style.WARNING if row.outcome in ("rejected", "skipped") else str
                    self.stdout.write(style(row.line()))

        counts = report_write(
            spool, path, fmt, on_row, extra={"interrupted": bool(stopped), "stopped": stopped}
        )
        if printed["rows"] > PRINTED_ROWS:
            self.stdout.write(f"... and {printed['rows'] - PRINTED_ROWS} more not accepted: see the report")
        seconds = time.monotonic() - started
        rate = spool.count / seconds if seconds > 0 else 0.0
        summary = ", ".join(f"{counts[k]} {k}" for k in OUTCOMES)
        line = f"{seconds:.1f}s ({rate:.1f} files/s): {summary}; report: {path}"
        if stopped:
            raise CommandError(
                f"{stopped} after {line}. Run the same command again to continue: "
                "files already imported are recognised by their content and not imported twice"
            )
        self.stdout.write(f"done in {line}")

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


PRINTED_ROWS = 1000


def _default_report(fmt: str | None) -> Path:
    stamp = f"{timezone.now():%Y%m%d-%H%M%S-%f}"  # two runs in one second must not share a report
    return Path(settings.DATA_DIR) / "imports" / f"import-{stamp}.{fmt or 'csv'}"


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _rows(root: Path, chunk: imports.Chunk, outcomes: list[Any]) -> list[ReportRow]:
    """Report rows of one ingested chunk; a zip's entries are named inside the zip."""
    by_name = {p.name: p for p in chunk.paths}
    paths = chunk.paths
    archive = paths[0] if len(paths) == 1 and paths[0].suffix.lower() in ZIP_EXTENSIONS else None
    rows = []
    for o in outcomes:
        if archive is not None and o.name != archive.name:
            file = f"{_rel(root, archive)}/{o.name}"
        else:
            file = _rel(root, by_name.get(o.name, root / o.name))
        rows.append(ReportRow(file, chunk.listing.external_id, o.status, o.detail, o.photo_id))
    return rows
