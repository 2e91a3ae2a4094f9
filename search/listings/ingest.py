"""Photo ingestion: one service behind the web page, the JSON API and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F

from flatsite.core import faults, storage
from flatsite.jobs import services as jobs
from search.listings.decoding import image_normalise
from search.listings.uploads import (
    ZIP_SUFFIXES,
    Readable,
    Staged,
    StagedFile,
    UploadLimits,
    UploadRejected,
    clean_name,
    discard_staging,
    expand_zip,
    new_staging_dir,
    stage_stream,
)
from search.ml.files import file_sha256
from search.ml.images.normalise import ImageLimits, ImageRejected, Normalised, probe
from search.models import Job, Listing, Photo, UploadBatch

log = logging.getLogger(__name__)

QUEUE_UNAVAILABLE = (
    "The job queue is unavailable: your photos are saved and will be processed when it is back."
)


@dataclass
class Outcome:
    """What happened to one uploaded file."""

    name: str
    status: str  # "accepted" | "duplicate" | "rejected"
    detail: str = ""
    photo_id: int | None = None
    duplicate_of: int | None = None
    created: bool = field(default=False, repr=False)  # this upload stored a new photo row

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and templates."""
        return {key: value for key, value in self.__dict__.items() if key != "created"}


@dataclass
class IngestResult:
    """The batch's job and the per-file outcomes."""

    job: Job | None
    outcomes: list[Outcome] = field(default_factory=list)
    enqueued: jobs.Enqueued | None = None
    batch: UploadBatch | None = None  # None only for uploads refused before registering (CLI reports)

    @property
    def queue_unavailable(self) -> bool:
        """The photos are stored but the queue refused the job; the reconciler sends it later."""
        return self.enqueued is not None and self.enqueued.sent is False


def upload_limits() -> UploadLimits:
    """Limits from settings."""
    return UploadLimits(
        max_files=settings.FLATSITE_MAX_FILES_PER_UPLOAD,
        max_file_bytes=settings.FLATSITE_MAX_UPLOAD_BYTES,
        max_zip_bytes=settings.FLATSITE_MAX_ZIP_BYTES,
    )


def image_limits() -> ImageLimits:
    """Image limits from settings."""
    return ImageLimits(max_pixels=settings.FLATSITE_MAX_PIXELS, max_bytes=settings.FLATSITE_MAX_UPLOAD_BYTES)


def photos_stage(
    items: Sequence[tuple[str, Readable]], *, limits: UploadLimits | None = None
) -> tuple[Path, Staged]:
    """Copy uploaded streams (files or zips) into a fresh staging folder."""
    limits = limits or upload_limits()
    if len(items) > limits.max_files:
        raise UploadRejected(f"too many files ({len(items)}; limit {limits.max_files})")
    staging = new_staging_dir(Path(settings.STAGING_ROOT))
    staged = Staged()
    try:
        for name, stream in items:
            _stage_one(name, stream, staging, limits, staged)
    except UploadRejected:
        discard_staging(staging)
        raise
    return staging, staged


def _stage_one(name: str, stream: Readable, staging: Path, limits: UploadLimits, staged: Staged) -> None:
    try:
        base = clean_name(name, limits.max_name_length)
        path = stage_stream(stream, base, staging, limits)
    except ValueError as exc:
        staged.rejected.append((name[:200], str(exc)))
        return
    if base.lower().endswith(ZIP_SUFFIXES):
        expand_zip(path, staging, limits, staged)
        path.unlink()
    else:
        staged.files.append(StagedFile(name=base, path=path))


def photo_ingest(
    *,
    listing: Listing,
    uploader: Any,
    items: Sequence[tuple[str, Readable]],
    tags: dict[str, str] | None = None,
    enqueue: bool = True,
) -> IngestResult:
    """Validate, store and register uploaded photos of one listing as one job; processing is queued."""
    staging, staged = photos_stage(items)
    try:
        return photos_register(
            listing=listing, uploader=uploader, staged=staged, tags=tags or {}, enqueue=enqueue
        )
    finally:
        discard_staging(staging)


def photos_register(
    *, listing: Listing, uploader: Any, staged: Staged, tags: dict[str, str], enqueue: bool = True
) -> IngestResult:
    """Register staged files (reject bad headers, link byte copies, store the rest) and record the batch."""
    outcomes = [Outcome(name, "rejected", reason) for name, reason in staged.rejected]
    written: list[Path] = []
    created: list[int] = []
    job = enqueued = None
    try:
        with transaction.atomic():
            for item in staged.files:
                outcome = _register_one(listing, uploader, item.name, item.path, tags, written)
                outcomes.append(outcome)
                if outcome.created and outcome.photo_id is not None:
                    created.append(outcome.photo_id)
            rows = [o.as_dict() for o in outcomes]
            if created:  # a job only for stored photos: repeats and rejections leave nothing to process
                job, enqueued = _job_for(created, listing, uploader, rows, enqueue)
            batch = UploadBatch.objects.create(listing=listing, uploaded_by=uploader, job=job, outcomes=rows)
    except Exception:
        storage.remove_quietly(*written)
        raise
    return IngestResult(job=job, outcomes=outcomes, enqueued=enqueued, batch=batch)


def _job_for(
    photo_ids: list[int], listing: Listing, uploader: Any, rows: list[dict[str, Any]], enqueue: bool
) -> tuple[Job, jobs.Enqueued | None]:
    """The batch's ingest job; it counts every photo the batch stored, copies linked at upload included."""
    job = jobs.job_create(Job.Kind.INGEST, user=uploader, params={"listing": listing.pk, "extract": enqueue})
    Photo.objects.filter(pk__in=photo_ids).update(job=job)
    job.total = len(photo_ids)
    job.done = _final_count(job.pk)  # copies of already stored photos are final from the start
    job.result = {"outcomes": rows}
    job.save(update_fields=["total", "done", "result"])
    if job.done == job.total:
        transaction.on_commit(lambda: jobs.job_finish(job.pk))
        return job, None
    return job, jobs.job_enqueue(job) if enqueue else None


def _register_one(
    listing: Listing, uploader: Any, name: str, path: Path, tags: dict[str, str], written: list[Path]
) -> Outcome:
    try:
        found = probe(path, name, image_limits())
    except ImageRejected as exc:
        return Outcome(name, "rejected", str(exc))
    digest = file_sha256(path)
    previous = (
        listing.photos.filter(original_name=name, sha256_bytes=digest)
        .exclude(status=Photo.Status.REJECTED)
        .first()
    )
    if previous is not None:
        return Outcome(name, "duplicate", "already in this listing (same name and bytes)", previous.pk)
    base = {"listing": listing, "uploader": uploader, "original_name": name, "sha256_bytes": digest}
    base["room_tag"] = tags.get(name, "")
    original = _stored_with_bytes(digest)
    if original is not None:
        photo = Photo.objects.create(
            **base, status=Photo.Status.DUPLICATE, duplicate_of=original, **_copied_fields(original)
        )
        return Outcome(name, "duplicate", _dup_text(original), photo.pk, original.pk, created=True)
    relative = f"originals/{storage.new_name(Path(name).suffix.lower())}"
    target = storage.private_path(relative)
    storage.copy_into(target, path)
    written.append(target)
    photo = Photo.objects.create(**base, original_path=relative, width=found.width, height=found.height)
    return Outcome(name, "accepted", "queued for processing", photo.pk, created=True)


def _copied_fields(original: Photo) -> dict[str, Any]:
    """Fields a copy shares with the photo that stores its pixels."""
    names = ("image_path", "thumb_path", "width", "height", "sha256_pixels", "phash")
    return {name: getattr(original, name) for name in names}


def _dup_text(original: Photo) -> str:
    return (
        f"exact duplicate of photo #{original.pk} ({original.original_name}, listing #{original.listing_id})"
    )


def _stored_with_bytes(digest: str) -> Photo | None:
    # Only a processed photo holding its own files can serve as the original; a copy of one still
    # in processing is processed too and linked then, by its pixels.
    return (
        Photo.objects.filter(
            sha256_bytes=digest,
            duplicate_of__isnull=True,
            status__in=[Photo.Status.PROCESSED, Photo.Status.INDEXED],
        )
        .order_by("id")
        .first()
    )


def photo_process(photo_id: int) -> Photo | None:
    """Normalise one received photo: derivatives, hashes, pixel-duplicate link, or rejection."""
    if not Photo.objects.filter(pk=photo_id, status=Photo.Status.RECEIVED).exists():
        return None  # already processed: a redelivered task must not do it twice
    photo = _photo_attempt(photo_id)
    if photo is None:
        return photo_reject(photo_id, _quarantine_reason())
    try:
        original = storage.private_path(photo.original_path)
        result = image_normalise(original, photo.original_name, image_limits(), with_image=False)
    except ImageRejected as exc:
        return photo_reject(photo_id, str(exc))
    return _photo_store(photo, result)


def _photo_attempt(photo_id: int) -> Photo | None:
    # Counted (and committed) before the risky decode, so a photo that kills its worker every time
    # is quarantined after FLATSITE_JOB_MAX_ATTEMPTS deliveries instead of failing its whole batch.
    limit = settings.FLATSITE_JOB_MAX_ATTEMPTS
    if not Photo.objects.filter(pk=photo_id, attempts__lt=limit).update(attempts=F("attempts") + 1):
        return None
    photo = Photo.objects.get(pk=photo_id)
    if photo.attempts == 1 and photo.job_id is not None:
        jobs.job_advanced(photo.job_id)  # a new photo started: the job is not stuck
    faults.photo_decode_starting(photo.original_name)
    return photo


def _quarantine_reason() -> str:
    limit = settings.FLATSITE_JOB_MAX_ATTEMPTS
    return f"quarantined after {limit} attempts: the worker died while processing it each time"


def _photo_store(photo: Photo, result: Normalised) -> Photo | None:
    image_rel = f"photos/{storage.new_name('.jpg')}"
    thumb_rel = f"thumbs/{storage.new_name('.jpg')}"
    files = [storage.media_path(image_rel), storage.media_path(thumb_rel)]
    storage.write_atomic(files[0], result.jpeg)
    storage.write_atomic(files[1], result.thumbnail)
    fields = {
        "image_path": image_rel,
        "thumb_path": thumb_rel,
        "width": result.width,
        "height": result.height,
        "sha256_pixels": result.sha256_pixels,
        "phash": f"{result.phash:016x}",
    }
    try:
        with transaction.atomic():
            original = _stored_with_pixels(result.sha256_pixels, exclude=photo.pk)
            if original is not None:
                storage.remove_quietly(*files)
                return _photo_link(photo.pk, original)
            updated = Photo.objects.filter(pk=photo.pk, status=Photo.Status.RECEIVED).update(
                status=Photo.Status.PROCESSED, **fields
            )
    except IntegrityError:
        # Another worker stored the same pixels a moment ago: link to it instead.
        storage.remove_quietly(*files)
        return photo_process_retry_as_duplicate(photo.pk, result.sha256_pixels)
    if not updated:
        storage.remove_quietly(*files)
        return None
    return Photo.objects.get(pk=photo.pk)


def photo_process_retry_as_duplicate(photo_id: int, sha256_pixels: str) -> Photo | None:
    """Link a photo to the stored photo with the same pixels (after losing a race)."""
    with transaction.atomic():
        original = _stored_with_pixels(sha256_pixels, exclude=photo_id)
        if original is None:
            return None
        return _photo_link(photo_id, original)


def _stored_with_pixels(sha: str, exclude: int) -> Photo | None:
    return (
        Photo.objects.select_for_update()
        .filter(sha256_pixels=sha, duplicate_of__isnull=True)
        .exclude(pk=exclude)
        .first()
    )


def _photo_link(photo_id: int, original: Photo) -> Photo | None:
    updated = Photo.objects.filter(pk=photo_id, status=Photo.Status.RECEIVED).update(
        status=Photo.Status.DUPLICATE, duplicate_of=original, **_copied_fields(original)
    )
    if not updated:
        return None
    photo = Photo.objects.get(pk=photo_id)
    _discard_original(photo)
    return photo


def _discard_original(photo: Photo) -> None:
    # The same pixels are stored once; the copy's upload bytes are not kept.
    if photo.original_path:
        storage.remove_quietly(storage.private_path(photo.original_path))
        Photo.objects.filter(pk=photo.pk).update(original_path="")


def photo_reject(photo_id: int, reason: str) -> Photo | None:
    """Mark a received photo (and byte copies linked to it) rejected with a reason."""
    with transaction.atomic():
        updated = Photo.objects.filter(pk=photo_id, status=Photo.Status.RECEIVED).update(
            status=Photo.Status.REJECTED, reject_reason=reason[:500]
        )
        Photo.objects.filter(duplicate_of_id=photo_id, status=Photo.Status.DUPLICATE).update(
            status=Photo.Status.REJECTED, reject_reason=f"copy of a rejected photo: {reason}"[:500]
        )
    if not updated:
        return None
    photo = Photo.objects.get(pk=photo_id)
    _discard_original(photo)
    return photo


def job_ingest_run(job_id: int, *, then: Callable[[Job], dict[str, Any]] | None = None) -> Job:
    """Process every received photo of an ingest job, reporting progress; `then` names the next step."""
    pending = list(
        Photo.objects.filter(job_id=job_id, status=Photo.Status.RECEIVED).values_list("pk", flat=True)
    )
    for photo_id in pending:
        if jobs.job_should_stop(job_id):
            return jobs.job_finish(job_id, status=Job.Status.CANCELLED)
        try:
            photo_process(photo_id)
        except Exception as exc:  # one bad photo must not stop the batch
            log.exception("processing photo %s failed", photo_id)
            photo_reject(photo_id, f"processing failed: {exc}")
        jobs.job_progress(job_id, done=_final_count(job_id))
    result: dict[str, Any] = {"summary": ingest_summary(job_id)}
    if then is not None:
        # Run before the job finishes, so its final snapshot already names what follows it.
        result.update(then(Job.objects.get(pk=job_id)))
    return jobs.job_finish(job_id, result=result)


def job_abandoned(job: Job, error: str) -> None:
    """Give the photos of an abandoned ingest job a final state: none stays "received" forever."""
    Photo.objects.filter(job=job, status=Photo.Status.RECEIVED).update(
        status=Photo.Status.REJECTED, reject_reason=f"not processed: {error}"
    )


def _final_count(job_id: int) -> int:
    # Every photo of the batch counts, so an upload of 10 photos reads n/10 whatever each turns out to be;
    # copies linked at upload time are final from the start.
    return Photo.objects.filter(job_id=job_id).exclude(status=Photo.Status.RECEIVED).count()


def ingest_summary(job_id: int) -> dict[str, int]:
    """Counts of the job's photos by status."""
    rows = Photo.objects.filter(job_id=job_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}
