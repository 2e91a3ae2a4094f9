"""Evaluate an encoder's index version on a seeded sample of the collection and store the result on it."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image

from flatsite.core import storage
from flatsite.jobs import runner
from flatsite.jobs import services as jobs
from search.clusters.selectors import photo_room_tags
from search.ml.encoders.registry import load_encoder
from search.ml.evaluation import EvalConfig, EvaluationStopped, StepFn, StopFn, evaluate, sample_indices
from search.ml.images.loading import open_rgb
from search.models import IndexVersion, Job, Photo

# ENCODER_RESOLVERS re-exported: training.apps registers its resolver here; the search path reads the list.
from search.ops.selectors import ENCODER_RESOLVERS as ENCODER_RESOLVERS
from search.ops.selectors import encoder_ensure, search_encoder

log = logging.getLogger(__name__)
MAX_SIDE = 512  # encoders see <= 300 px; edits on 512 px copies behave as on full-size photos, at a fraction
DEFAULT_SEED = 0


def _sample(size: int, seed: int) -> tuple[list[int], list[str], int]:
    """(photo ids, their image paths, photos considered): a seeded choice among stored, processed photos.

    Only ids are read for the whole collection (8 bytes a photo, streamed); paths only for the sample.
    """
    rows = (
        Photo.objects.filter(
            duplicate_of__isnull=True, status__in=[Photo.Status.PROCESSED, Photo.Status.INDEXED]
        )
        .exclude(image_path="")
        .order_by("id")
        .values_list("id", flat=True)
    )
    ids = np.fromiter(rows.iterator(chunk_size=10_000), dtype=np.int64)
    if ids.size < 2:
        raise ValueError(f"the evaluation needs at least 2 processed photos, found {ids.size}")
    chosen = [int(ids[i]) for i in sample_indices(int(ids.size), size, seed)]
    paths = dict(Photo.objects.filter(pk__in=chosen).values_list("id", "image_path"))
    return chosen, [paths[pid] for pid in chosen], int(ids.size)


def _room_tags(photo_ids: list[int]) -> tuple[list[str], dict[str, int]]:
    """Each photo's room tag (import file name / CSV first, else its moderator-named cluster) and sources."""
    truth = dict(Photo.objects.filter(pk__in=photo_ids).values_list("pk", "room_tag"))
    named = photo_room_tags(photo_ids)
    tags, sources = [], {"import": 0, "cluster": 0}
    for pid in photo_ids:
        tag = " ".join(str(truth.get(pid) or "").split()).lower()
        if tag:
            sources["import"] += 1
        elif pid in named:
            tag = named[pid]
            sources["cluster"] += 1
        tags.append(tag)
    return tags, sources


def _load(relpath: str) -> Image.Image | None:
    try:
        img = open_rgb(storage.media_path(relpath), MAX_SIDE)
    except ValueError:
        log.warning("evaluation: cannot read %s; photo left out", relpath, exc_info=True)
        return None
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return img


def index_evaluate(
    encoder: str,
    version: int,
    *,
    sample_size: int | None = None,
    seed: int = DEFAULT_SEED,
    on_step: StepFn | None = None,
    should_stop: StopFn | None = None,
) -> IndexVersion:
    """Embed a seeded sample with the version's encoder, measure it, and store the result on the version."""
    if not IndexVersion.objects.filter(encoder=encoder, version=version).exists():
        raise LookupError(f"no {encoder} index version {version}")
    ok, reason = encoder_ensure(encoder)
    if not ok:
        raise ValueError(f"encoder {encoder} is not available: {reason}")
    size = sample_size or settings.FLATSITE_EVAL_SAMPLE
    start = time.perf_counter()
    ids, paths, considered = _sample(size, seed)
    loaded = [(pid, img) for pid, img in zip(ids, map(_load, paths), strict=True) if img is not None]
    images = [img for _, img in loaded]
    tags, sources = _room_tags([pid for pid, _ in loaded])
    model = load_encoder(encoder)
    result = evaluate(
        lambda batch: model.embed_images(batch),
        images,
        tags,
        EvalConfig(seed=seed),
        on_step=on_step,
        should_stop=should_stop,
    )
    meta = {
        "encoder": encoder, "version": version, "seed": seed, "sample_size": len(images),
        "sample_requested": size, "photos_considered": considered, "unreadable": len(ids) - len(images),
        "room_tag_sources": sources, "evaluated_at": timezone.now().isoformat(),
        "took_s": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    with transaction.atomic():
        row = IndexVersion.objects.select_for_update().filter(encoder=encoder, version=version).first()
        if row is None:
            raise LookupError(f"{encoder} index version {version} was deleted during the evaluation")
        row.evaluation = {**meta, **result}
        row.save(update_fields=["evaluation"])
    return row


def index_evaluate_enqueue(encoder: str, version: int, *, user: Any = None) -> Job:
    """Queue an evaluation job for one index version (refused when one is already waiting or running)."""
    row = IndexVersion.objects.filter(encoder=encoder, version=version).first()
    if row is None:
        raise LookupError(f"no {encoder} index version {version}")
    if row.status == IndexVersion.Status.FAILED:
        raise ValueError(f"{row} failed to build; there is nothing to evaluate")
    ok, reason = encoder_ensure(encoder)
    if not ok:
        raise ValueError(f"encoder {encoder} is not available: {reason}")
    busy = Job.objects.filter(kind=Job.Kind.EVALUATE, params__encoder=encoder, params__version=version)
    if busy.exclude(status__in=Job.FINAL_STATES).exists():
        raise ValueError(f"an evaluation of {row} is already queued or running")
    with transaction.atomic():
        job = jobs.job_create(Job.Kind.EVALUATE, user=user, params={"encoder": encoder, "version": version})
        jobs.job_enqueue(job)
    return job


def index_evaluate_after_build(encoder: str, *, user: Any = None) -> list[Job]:
    """After a new encoder's index is built: evaluate its latest version, and the search encoder's live one
    when it has no evaluation yet, so the operations page can compare them side by side."""
    targets = []
    latest = IndexVersion.objects.filter(encoder=encoder).exclude(status=IndexVersion.Status.FAILED).first()
    if latest is not None:
        targets.append((encoder, latest.version))
    search = search_encoder()
    live = IndexVersion.objects.filter(encoder=search, status=IndexVersion.Status.LIVE).first()
    if live is not None and encoder != search and not live.evaluation:
        targets.append((search, live.version))
    queued = []
    for name, version in targets:
        try:
            queued.append(index_evaluate_enqueue(name, version, user=user))
        except ValueError as exc:  # busy or unavailable: the build itself succeeded, so only note it
            log.info("no evaluation queued for %s v%s: %s", name, version, exc)
    return queued


def job_evaluate_run(job_id: int) -> Job:
    """Run a claimed evaluation job to its end (cancel-aware; a stopped run stores nothing)."""
    job = Job.objects.get(pk=job_id)
    encoder, version = str(job.params["encoder"]), int(job.params["version"])

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        ctx.on_step(0, message=f"evaluating {encoder} v{version}")
        try:  # on_step: once per batch of 32 images
            row = index_evaluate(encoder, version, on_step=ctx.on_step, should_stop=ctx.should_stop)
        except EvaluationStopped:
            raise runner.JobStopped from None
        near = row.evaluation["near_duplicate"]
        return {"encoder": encoder, "version": version, "recall_at_1": near["recall_at_1"]}

    return runner.job_run(job_id, work, label="evaluation")
