"""Bulk import of a planned stream of files, one upload-sized job per chunk (used by import_photos).

A re-run imports nothing twice: a file whose listing already holds a photo of the same name and bytes
(content hash) is reported as already imported, before it is staged, and creates no row and no job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from search import pipeline
from search.listings import ingest
from search.listings import services as listings
from search.listings.import_plan import ZIP_EXTENSIONS, PlannedFile, PlannedListing
from search.listings.uploads import UploadRejected
from search.ml.files import file_sha256
from search.models import Job, Photo


@dataclass
class Chunk:
    """Files of one listing imported as one upload (a zip is a chunk of its own)."""

    listing: PlannedListing
    files: list[PlannedFile] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """The chunk's file paths."""
        return [f.path for f in self.files]


OnChunk = Callable[[Chunk, ingest.IngestResult], None]


@contextmanager
def _opened(paths: list[Path]) -> Iterator[list[tuple[str, BinaryIO]]]:
    with ExitStack() as stack:
        yield [(path.name, stack.enter_context(open(path, "rb"))) for path in paths]


def import_chunks(files: Iterable[PlannedFile], max_files: int) -> Iterator[Chunk]:
    """Group a stream of planned files into upload-sized chunks of one listing each, lazily.

    A web upload takes at most max_files files; a bulk import is the same upload repeated, so one
    listing of 1 340 photos becomes three jobs. A zip alone in its chunk fails alone if it is invalid.
    A file whose name is already in the chunk starts a new one: outcomes are matched back by name.
    """
    size = max(1, max_files)
    current: Chunk | None = None
    names: set[str] = set()
    for item in files:
        if item.path.suffix.lower() in ZIP_EXTENSIONS:
            yield Chunk(item.listing, [item])
            continue
        if (
            current is None
            or current.listing is not item.listing
            or len(current.files) >= size
            or (item.path.name in names)
        ):
            if current is not None:
                yield current
            current, names = Chunk(item.listing), set()
        current.files.append(item)
        names.add(item.path.name)
    if current is not None:
        yield current


def _digests(paths: list[Path]) -> dict[str, str]:
    digests: dict[str, str] = {}
    for path in paths:
        try:
            digests[path.name] = file_sha256(path)
        except OSError:
            continue  # ingest reports the unreadable file
    return digests


def _earlier_photos(listing: Any, chunk: Chunk) -> dict[str, int]:
    """The chunk's files an earlier run stored in this listing (same name and bytes): name -> photo id.

    Any status counts, rejected included: ingest itself links only repeats of photos that were not
    rejected, so without this a re-run would store a rejected file again, with a new job.
    """
    digests = _digests(chunk.paths)
    rows = Photo.objects.filter(
        listing=listing, original_name__in=list(digests), sha256_bytes__in=set(digests.values())
    ).values_list("pk", "original_name", "sha256_bytes")
    found: dict[str, int] = {}
    for pk, name, digest in rows.order_by("pk"):
        if digests.get(name) == digest and name not in found:
            found[name] = pk
    return found


def _earlier_outcomes(found: Mapping[str, int], inline: bool) -> list[ingest.Outcome]:
    """Outcomes of files imported before; inline, the jobs an interrupted run left unfinished run first."""
    photos = Photo.objects.filter(pk__in=list(found.values()))
    if inline:
        waiting = photos.filter(status=Photo.Status.RECEIVED, job__isnull=False)
        _resume(set(waiting.values_list("job_id", flat=True)))
    rows = {row["pk"]: row for row in photos.values("pk", "status", "reject_reason")}
    return [ingest.Outcome(name, "skipped", _earlier_text(rows[pk]), pk) for name, pk in found.items()]


def _earlier_text(row: Mapping[str, Any]) -> str:
    text = f"already imported (photo #{row['pk']}, {row['status']}"
    if row["status"] == Photo.Status.REJECTED and row["reject_reason"]:
        text += f": {row['reject_reason']}"
    return text + ")"


def _resume(job_ids: set[int]) -> None:
    """Process here the jobs an interrupted inline run stored but did not finish."""
    for job_id in sorted(job_ids):
        if Job.objects.filter(pk=job_id).exclude(status__in=Job.FINAL_STATES).exists():
            _run_inline(job_id)


def _run_inline(job_id: int) -> Job:
    """Run an ingest job here; interrupted (Ctrl-C), it is handed back so that a re-run can claim it."""
    try:
        return pipeline.ingest_inline(job_id)
    except KeyboardInterrupt:
        # Left running, the job would wait for its heartbeat to go stale before anyone could claim it.
        Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, worker="inline").update(
            status=Job.Status.QUEUED
        )
        raise


def _ingest_chunk(listing: Any, owner: Any, chunk: Chunk, inline: bool) -> ingest.IngestResult:
    found = _earlier_photos(listing, chunk)
    todo = [f for f in chunk.files if f.path.name not in found]
    result = ingest.IngestResult(job=None)
    if todo:
        result = _ingest_files(listing, owner, todo, inline)
    earlier = _earlier_outcomes(found, inline) if found else []
    result.outcomes = [_repeat_as_skipped(o) for o in result.outcomes] + earlier
    return result


def _repeat_as_skipped(outcome: ingest.Outcome) -> ingest.Outcome:
    # A zip's entries are checked by ingest itself: a repeat there is a "duplicate" that stored nothing.
    if outcome.status == "duplicate" and not outcome.created and outcome.duplicate_of is None:
        return ingest.Outcome(
            outcome.name, "skipped", f"already imported (photo #{outcome.photo_id})", outcome.photo_id
        )
    return outcome


def _ingest_files(listing: Any, owner: Any, files: list[PlannedFile], inline: bool) -> ingest.IngestResult:
    paths = [f.path for f in files]
    tags = {f.path.name: f.tag for f in files if f.tag}
    try:
        with _opened(paths) as items:
            result = ingest.photo_ingest(
                listing=listing, uploader=owner, items=items, tags=tags, enqueue=not inline
            )
    except (UploadRejected, OSError) as exc:
        # The batch is refused as a whole (a zip over the limits, an unreadable file): name each file.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ingest.IngestResult(
            job=None, outcomes=[ingest.Outcome(p.name, "rejected", reason) for p in paths]
        )
    if inline and result.job is not None and result.job.total:
        result.job = _run_inline(result.job.pk)
    return result


def listings_import(
    files: Iterable[PlannedFile], *, owner: Any, inline: bool, on_chunk: OnChunk | None = None
) -> list[int]:
    """Create or reuse each planned listing and ingest its files chunk by chunk; the ids of the jobs made."""
    job_ids: list[int] = []
    current: tuple[PlannedListing, Any] | None = None
    for chunk in import_chunks(files, settings.FLATSITE_MAX_FILES_PER_UPLOAD):
        if current is None or current[0] is not chunk.listing:
            plan = chunk.listing
            listing, _ = listings.listing_get_or_create(
                owner=owner, external_id=plan.external_id, title=plan.title, **plan.fields
            )
            current = (plan, listing)
        result = _ingest_chunk(current[1], owner, chunk, inline)
        if result.job is not None:
            job_ids.append(result.job.pk)
        if on_chunk is not None:
            on_chunk(chunk, result)
    return job_ids
