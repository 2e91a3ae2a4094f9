"""Read-only queries behind an upload's result page: the batch, its jobs, when its photos are searchable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from flatsite.jobs.selectors import job_viewable
from search.listings import selectors
from search.models import Job, Listing, Photo, UploadBatch

# What the result page says about search, by state; upload_result.js switches between the same texts live.
SEARCHABLE_TEXTS = {
    "nothing": "Nothing from this upload was stored, so nothing new becomes searchable.",
    "processing": "The photos are being processed; they become searchable once extraction finishes "
    "(it starts when processing is done).",
    "extracting": "Searchable once extraction finishes.",
    "now": "Searchable now: the photos that were processed appear in search results.",
    "copies": "Every stored photo is a copy of one already in the collection: "
    "searchable as soon as that one is.",
    "no-extract": "Processed; the photos become searchable once feature extraction runs.",
    "stopped": "Processing stopped (failed or cancelled): photos it did not process are not searchable.",
    "extract-stopped": "Not searchable yet: extraction stopped (failed or cancelled); "
    "an admin can run it again from Operations.",
}


@dataclass(frozen=True)
class UploadView:
    """An upload batch as one user may see it."""

    batch: UploadBatch
    job: Job | None
    job_watchable: bool  # the user may open the job's page and live feed (its creator, admins)
    extract_job: Job | None
    extract_watchable: bool
    searchable: str  # a key of SEARCHABLE_TEXTS

    @property
    def searchable_text(self) -> str:
        """The sentence for the current state."""
        return SEARCHABLE_TEXTS[self.searchable]

    @property
    def queue_unavailable(self) -> bool:
        """The photos are stored but the job never reached the queue (the reconciler sends it later)."""
        return self.job is not None and self.job.status == Job.Status.QUEUED and self.job.sent_at is None


def upload_batch_viewable(user: Any, listing_id: int, batch_id: int) -> UploadView | None:
    """An upload of a listing the user may see (its owner, moderators, admins), or None."""
    listing = selectors.listing_viewable(user, listing_id)
    if listing is None:
        return None
    batches = UploadBatch.objects.select_related("job", "uploaded_by")
    batch = batches.filter(pk=batch_id, listing=listing).first()
    if batch is None:
        return None
    batch.listing = listing
    extract = _extract_job(batch.job)
    return UploadView(
        batch=batch,
        job=batch.job,
        job_watchable=batch.job is not None and job_viewable(user, batch.job.pk) is not None,
        extract_job=extract,
        extract_watchable=extract is not None and job_viewable(user, extract.pk) is not None,
        searchable=_searchable(batch.job, extract),
    )


def listing_uploads(listing: Listing) -> QuerySet[UploadBatch]:
    """A listing's uploads, newest first."""
    return listing.upload_batches.select_related("job", "uploaded_by")


def _extract_job(job: Job | None) -> Job | None:
    extract_id = job.result.get("extract_job") if job is not None else None
    return Job.objects.filter(pk=extract_id).first() if isinstance(extract_id, int) else None


def _searchable(job: Job | None, extract: Job | None) -> str:
    if job is None:
        return "nothing"
    if not job.is_final:
        return "processing"
    if job.status != Job.Status.SUCCEEDED:
        return "stopped"
    if extract is None:
        copies_only = not job.photos.exclude(status=Photo.Status.DUPLICATE).exists()
        return "copies" if copies_only and "extract_job" not in job.result else "no-extract"
    if not extract.is_final:
        return "extracting"
    return "now" if extract.status == Job.Status.SUCCEEDED else "extract-stopped"
