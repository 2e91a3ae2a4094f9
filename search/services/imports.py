"""Bulk import of planned listings and their photos (used by the import_photos command)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, BinaryIO

from search.importing import PlannedListing
from search.services import ingest, listings


@contextmanager
def _opened(plan: PlannedListing) -> Iterator[list[tuple[str, BinaryIO]]]:
    with ExitStack() as stack:
        yield [(path.name, stack.enter_context(open(path, "rb"))) for path, _ in plan.files]


def listings_import(
    plans: list[PlannedListing],
    *,
    owner: Any,
    inline: bool,
    on_listing: Callable[[PlannedListing, ingest.IngestResult], None] | None = None,
) -> list[ingest.IngestResult]:
    """Create or reuse each planned listing and ingest its files (processed here when inline)."""
    results: list[ingest.IngestResult] = []
    for plan in plans:
        listing, _ = listings.listing_get_or_create(
            owner=owner, external_id=plan.external_id, title=plan.title, **plan.fields
        )
        tags = {path.name: tag for path, tag in plan.files if tag}
        with _opened(plan) as items:
            result = ingest.photo_ingest(
                listing=listing, uploader=owner, items=items, tags=tags, enqueue=not inline
            )
        if inline and result.job is not None and result.job.total:
            result.job = ingest.job_ingest_inline(result.job.pk)
        results.append(result)
        if on_listing is not None:
            on_listing(plan, result)
    return results
