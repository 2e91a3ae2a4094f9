"""2 000+ malformed images: each is processed or rejected with a reason; nothing escapes or is half-written.

Most of the corpus goes through the isolated decoder directly (one reused child process, as in a
worker); a few hundred files go the whole way: upload service, staging, database rows, the processing
service the Celery task calls, stored derivatives. The nightly-size run is `python -m bench.fuzz`.
"""

from __future__ import annotations

import collections
import io
import logging
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from search import pipeline
from search.listings import ingest
from search.ml.images.normalise import ImageLimits, ImageRejected
from search.ml.images.safe_decode import ChildLimits, DecodeAborted, normalise_isolated
from search.models import Job, Photo
from tests import malformed
from tests.conftest import upload
from tests.shared_data import shared_data_dir

CORPUS_SIZE = 2_000
DB_PATH_SIZE = 300
BATCH = 100
ALWAYS_REJECTED = {"huge_dims", "pixel_bomb", "frame_bomb", "content_mismatch"}


@pytest.fixture(scope="module")
def bases() -> list[malformed.Base]:
    shared = shared_data_dir()
    real = malformed.real_bases(shared / "houses" if shared else None, 3, smallest=True)
    return malformed.generated_bases() + real


def _decode(path: Path, name: str) -> tuple[str, str]:
    try:
        normalise_isolated(path, name, ImageLimits(), ChildLimits(), with_image=False)
    except DecodeAborted as exc:
        return f"aborted:{exc.kind}", str(exc)
    except ImageRejected as exc:
        return "rejected", str(exc)
    return "processed", ""


def test_malformed_corpus_is_processed_or_cleanly_rejected(
    bases: list[malformed.Base], tmp_path: Path
) -> None:
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    unexplained: list[tuple[int, str, str]] = []
    for sample in malformed.corpus(CORPUS_SIZE, bases):
        path = tmp_path / sample.name
        path.write_bytes(sample.data)
        state, reason = _decode(path, sample.name)  # anything but ImageRejected fails the test here
        path.unlink()
        outcomes[sample.kind][state] += 1
        if state != "processed" and not reason.strip():
            unexplained.append((sample.index, sample.kind, "empty reason"))
        if "decoder error" in reason:  # normalise let an unexpected exception through: classify it
            unexplained.append((sample.index, sample.kind, reason))
        if sample.kind in ALWAYS_REJECTED and state == "processed":
            unexplained.append((sample.index, sample.kind, "accepted a bomb or mismatched file"))
    assert unexplained == []
    assert set(outcomes) == set(malformed.KINDS)
    assert sum(sum(c.values()) for c in outcomes.values()) == CORPUS_SIZE
    assert outcomes["polyglot"]["processed"] == sum(outcomes["polyglot"].values())


@pytest.mark.django_db
def test_malformed_uploads_end_in_one_final_state_with_nothing_half_written(
    bases: list[malformed.Base], listing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="search.listings.ingest")
    samples = list(malformed.corpus(DB_PATH_SIZE, bases, seed=1))
    outcomes: list[ingest.Outcome] = []
    for start in range(0, len(samples), BATCH):
        items = [upload(s.name, s.data) for s in samples[start : start + BATCH]]
        result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=False)
        if result.job is not None and result.job.total:
            pipeline.ingest_inline(result.job.pk)
        outcomes += result.outcomes
    assert [r.getMessage() for r in caplog.records] == []  # no exception escaped photo_process
    assert len(outcomes) == len(samples)
    assert all(o.detail.strip() for o in outcomes if o.status == "rejected")
    _assert_final_and_whole()
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


def _assert_final_and_whole() -> None:
    photos = list(Photo.objects.all())
    final = {Photo.Status.PROCESSED, Photo.Status.DUPLICATE, Photo.Status.REJECTED}
    assert [p.pk for p in photos if p.status not in final] == []
    rejected = [p for p in photos if p.status == Photo.Status.REJECTED]
    assert all(p.reject_reason.strip() and not p.image_path and not p.original_path for p in rejected)
    processed = [p for p in photos if p.status == Photo.Status.PROCESSED]
    assert processed and rejected  # the corpus really exercises both ends
    media = {p.image_path for p in processed} | {p.thumb_path for p in processed}
    originals = {p.original_path for p in photos if p.original_path}
    assert _files(settings.MEDIA_ROOT) == media
    assert _files(settings.PRIVATE_ROOT) == originals
    assert _files(settings.STAGING_ROOT) == set()


def _files(root: Any) -> set[str]:
    base = Path(root)
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()} if base.exists() else set()


@pytest.mark.django_db
def test_malformed_uploads_through_the_upload_page_never_give_a_server_error(
    bases: list[malformed.Base], listing: Any, client: Any
) -> None:
    client.force_login(listing.owner)
    samples = list(malformed.corpus(60, bases, seed=2))
    files = [_named(s.name, s.data) for s in samples]
    response = client.post(reverse("listings:upload", args=[listing.pk]), {"files": files}, follow=True)
    assert response.status_code == 200
    outcomes = response.context["outcomes"]
    assert len(outcomes) == len(samples)
    assert all(o["status"] in ("accepted", "duplicate", "rejected") for o in outcomes)


def _named(name: str, data: bytes) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream
