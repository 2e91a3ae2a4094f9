"""Feature extraction for stored photos: global vectors per active encoder and local keypoints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image

from flatsite.core import storage
from flatsite.jobs import runner
from flatsite.jobs import services as jobs
from search.clusters import assign as cluster_assign
from search.matching import index, matches
from search.ml.encoders.registry import encoder_status, load_encoder
from search.models import LOCAL_ENCODER, Feature, Job, Photo
from search.ops.selectors import search_encoder

log = logging.getLogger(__name__)
BATCH = 32
FLUSH = 1024  # vectors per index version written


def active_encoders() -> list[str]:
    """Encoders every stored photo gets features for: search (search_encoder()) first, then clustering."""
    names = [search_encoder(), settings.FLATSITE_CLUSTER_ENCODER]
    return list(dict.fromkeys(names))


def photos_missing(encoder: str, limit: int | None = None) -> list[int]:
    """Stored photos (not copies, not rejected) that lack a feature from this encoder."""
    qs = (
        Photo.objects.filter(
            duplicate_of__isnull=True, status__in=[Photo.Status.PROCESSED, Photo.Status.INDEXED]
        )
        .exclude(features__encoder=encoder)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return list(qs[:limit] if limit else qs)


def _image_paths(photo_ids: list[int]) -> tuple[list[int], list[str]]:
    rows = Photo.objects.filter(pk__in=photo_ids).values_list("id", "image_path")
    found = dict(rows)
    ids = [pid for pid in photo_ids if found.get(pid)]
    return ids, [str(storage.media_path(found[pid])) for pid in ids]


def _store(encoder: str, ids: list[int], vectors: np.ndarray) -> None:
    rows = [
        Feature(photo_id=pid, encoder=encoder, dim=int(vec.shape[0]), data=vec.astype(np.float32).tobytes())
        for pid, vec in zip(ids, vectors, strict=True)
    ]
    with transaction.atomic():
        Feature.objects.bulk_create(rows, ignore_conflicts=True)  # a redelivered batch adds nothing twice


def features_extract(
    encoder: str,
    photo_ids: list[int],
    *,
    on_step: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Embed photos with one encoder in batches, store the vectors and add them to its index."""
    model = load_encoder(encoder)
    done = 0
    for lo in range(0, len(photo_ids), FLUSH):
        if should_stop is not None and should_stop():
            break
        ids, paths = _image_paths(photo_ids[lo : lo + FLUSH])

        def step(n: int, _total: int, base: int = done) -> None:
            if on_step is not None:
                on_step(base + n)

        vectors = model.embed_paths(paths, batch_size=BATCH, on_step=step, should_stop=should_stop)  # (N, D)
        ids = ids[: len(vectors)]
        if ids:
            _store(encoder, ids, vectors)
            # One index version per flush, not per batch: each version rewrites the file.
            index.index_add(encoder, np.asarray(ids, dtype=np.int64), vectors, mark_indexed=False)
        done += len(photo_ids[lo : lo + FLUSH])
    return done


def local_extract(photo_ids: list[int], *, on_step: Callable[[int], None] | None = None) -> int:
    """Extract and store local keypoint features used to verify candidate matches."""
    from search.ml.match.local import extract_local

    done = 0
    ids, paths = _image_paths(photo_ids)
    for pid, path in zip(ids, paths, strict=True):
        with Image.open(path) as img:
            data = extract_local(img.convert("RGB")).to_bytes()
        Feature.objects.get_or_create(photo_id=pid, encoder=LOCAL_ENCODER, defaults={"data": data})
        done += 1
        if on_step is not None and done % 8 == 0:
            on_step(done)
    return done


def _mark_indexed(search: str) -> int:
    return Photo.objects.filter(status=Photo.Status.PROCESSED, features__encoder=search).update(
        status=Photo.Status.INDEXED
    )


@dataclass
class _JobHooks:
    """Progress and cancel callbacks bound to an optional job (None: run without reporting)."""

    job_id: int | None
    offset: int = 0

    def start(self, total: int, message: str) -> None:
        if self.job_id is not None:
            jobs.job_progress(self.job_id, done=self.offset, total=total, message=message)

    def step(self, done: int) -> None:
        if self.job_id is not None:
            jobs.job_progress(self.job_id, done=self.offset + done)

    def stop(self) -> bool:
        return self.job_id is not None and jobs.job_should_stop(self.job_id)


def features_run(job_id: int | None = None) -> dict[str, Any]:
    """Extract everything missing (all active encoders + local features); the unit of an extract job."""
    active = active_encoders()
    plan = {name: photos_missing(name) for name in [*active, LOCAL_ENCODER]}
    hooks = _JobHooks(job_id)
    hooks.start(sum(len(ids) for ids in plan.values()), "extracting features")
    counts: dict[str, Any] = {}
    for name, ids in plan.items():
        if name == LOCAL_ENCODER:
            counts[name] = local_extract(ids, on_step=hooks.step)
        else:
            counts[name] = features_extract(name, ids, on_step=hooks.step, should_stop=hooks.stop)
        hooks.offset += len(ids)
    counts["indexed"] = _mark_indexed(active[0])
    # New photos join the current clustering run at once (provisional), without a refit.
    counts["clustered"] = cluster_assign.photos_assign_provisional(plan[settings.FLATSITE_CLUSTER_ENCODER])
    new_ids = plan[active[0]]
    hooks.start(hooks.offset + len(new_ids), "finding matches")
    counts["matches"] = matches.photo_matches_compute(new_ids, on_step=hooks.step)
    return counts


def features_reextract(encoder: str, job_id: int | None = None) -> dict[str, Any]:
    """Recompute one encoder's features for the whole collection, then build a fresh index version."""
    ids = list(
        Photo.objects.filter(
            duplicate_of__isnull=True, status__in=[Photo.Status.PROCESSED, Photo.Status.INDEXED]
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    hooks = _JobHooks(job_id)
    hooks.start(len(ids), f"re-extracting {encoder}")
    model = load_encoder(encoder)
    for lo in range(0, len(ids), FLUSH):
        if hooks.stop():
            return {"encoder": encoder, "stopped_at": lo}
        chunk, paths = _image_paths(ids[lo : lo + FLUSH])
        hooks.offset = lo
        vectors = model.embed_paths(paths, batch_size=BATCH, on_step=lambda n, _total: hooks.step(n))
        with transaction.atomic():
            Feature.objects.filter(encoder=encoder, photo_id__in=chunk).delete()
            _store(encoder, chunk, vectors)
    version = index.index_rebuild(encoder, live=True, job_id=job_id)
    return {"encoder": encoder, "photos": len(ids), "index_version": version.version}


def operation_enqueue(kind: str, *, user: Any, encoder: str) -> Job:
    """Queue an admin operation: re-extract (EXTRACT, mode all) or reindex (REINDEX) for one encoder."""
    if kind not in (Job.Kind.EXTRACT, Job.Kind.REINDEX):
        raise ValueError(f"unknown operation {kind!r}")
    load_status = encoder_status(encoder)
    if not load_status[0]:
        raise ValueError(f"encoder {encoder} is not available: {load_status[1]}")
    busy = Job.objects.filter(kind=kind, params__encoder=encoder).exclude(status__in=Job.FINAL_STATES)
    if busy.exists():
        raise ValueError(f"a {kind} job for {encoder} is already queued or running")
    with transaction.atomic():
        job = jobs.job_create(kind, user=user, params={"mode": "all", "encoder": encoder})
        jobs.job_enqueue(job)
    return job


def job_operation_run(job_id: int) -> Job:
    """Run a claimed re-extract or reindex job."""
    job = Job.objects.get(pk=job_id)
    encoder = str(job.params["encoder"])

    def work(_: runner.JobContext) -> dict[str, Any]:
        if job.kind == Job.Kind.REINDEX:
            row = index.index_rebuild(encoder, live=True, job_id=job_id)
            return {"encoder": encoder, "index_version": row.version, "count": row.count}
        return features_reextract(encoder, job_id)

    return runner.job_run(job_id, work, label=job.kind)


def extract_enqueue(user: Any = None) -> Job | None:
    """Queue one extract job for whatever lacks features, unless one is already waiting."""
    if Job.objects.filter(kind=Job.Kind.EXTRACT, status=Job.Status.QUEUED).exists():
        return None
    with transaction.atomic():
        job = jobs.job_create(Job.Kind.EXTRACT, user=user, params={"mode": "pending"})
        jobs.job_enqueue(job)
    return job


def extract_after_ingest(user: Any) -> Job | None:
    """The extract job that will cover photos just processed: a new one, or the one already waiting."""
    # extract_enqueue adds none while one waits in the queue; that one (or any newer one) starts after
    # these photos were processed, so the newest "pending" extract job is the one that covers them.
    pending = Job.objects.filter(kind=Job.Kind.EXTRACT, params__mode="pending").order_by("-id")
    return extract_enqueue(user) or pending.first()


def extract_inline(user: Any = None) -> Job:
    """Run an extract job in this process (CLI without a worker); visible on the jobs page."""
    job = jobs.job_create(Job.Kind.EXTRACT, user=user, params={"mode": "pending", "inline": True})
    if jobs.job_claim(job.pk, worker="inline") is None:
        return Job.objects.get(pk=job.pk)
    return job_extract_run(job.pk)


def job_extract_run(job_id: int) -> Job:
    """Run a claimed extract job to its end (cancel-aware)."""
    return runner.job_run(job_id, lambda _: {"extracted": features_run(job_id)}, label="extraction")
