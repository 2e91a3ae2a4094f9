"""Bulk import of planned listings and their photos (used by the import_photos command)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from search import pipeline
from search.listings import ingest
from search.listings import services as listings
from search.listings.import_plan import ZIP_EXTENSIONS, PlannedListing
from search.listings.uploads import UploadRejected

OnChunk = Callable[[PlannedListing, list[Path], ingest.IngestResult], None]


@contextmanager
def _opened(paths: list[Path]) -> Iterator[list[tuple[str, BinaryIO]]]:
    with ExitStack() as stack:
        yield [(path.name, stack.enter_context(open(path, "rb"))) for path in paths]


def import_chunks(files: list[Path], max_files: int) -> list[list[Path]]:
    """Split a listing's files into upload-sized batches; each zip is a batch of its own.

    A web upload takes at most max_files files; a bulk import is the same upload repeated, so one
    listing of 1 340 photos becomes three jobs. A zip alone in its batch fails alone if it is invalid.
    """
    photos = [p for p in files if p.suffix.lower() not in ZIP_EXTENSIONS]
    zips = [[p] for p in files if p.suffix.lower() in ZIP_EXTENSIONS]
    size = max(1, max_files)
    return [photos[i : i + size] for i in range(0, len(photos), size)] + zips


def _ingest_chunk(
    listing: Any, owner: Any, chunk: list[Path], tags: dict[str, str], inline: bool
) -> ingest.IngestResult:
    try:
        with _opened(chunk) as items:
            result = ingest.photo_ingest(
                listing=listing, uploader=owner, items=items, tags=tags, enqueue=not inline
            )
    except (UploadRejected, OSError) as exc:
        # The batch is refused as a whole (a zip over the limits, an unreadable file): name each file.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ingest.IngestResult(
            job=None, outcomes=[ingest.Outcome(p.name, "rejected", reason) for p in chunk]
        )
    if inline and result.job is not None and result.job.total:
        result.job = pipeline.ingest_inline(result.job.pk)
    return result


def listings_import(
    plans: list[PlannedListing], *, owner: Any, inline: bool, on_chunk: OnChunk | None = None
) -> list[ingest.IngestResult]:
    """Create or reuse each planned listing and ingest its files in upload-sized jobs (inline: here)."""
    results: list[ingest.IngestResult] = []
    for plan in plans:
        listing, _ = listings.listing_get_or_create(
            owner=owner, external_id=plan.external_id, title=plan.title, **plan.fields
        )
        tags = {path.name: tag for path, tag in plan.files if tag}
        files = [path for path, _ in plan.files]
        for chunk in import_chunks(files, settings.FLATSITE_MAX_FILES_PER_UPLOAD):
            result = _ingest_chunk(listing, owner, chunk, tags, inline)
            results.append(result)
            if on_chunk is not None:
                on_chunk(plan, chunk, result)
    return results
