"""Evaluating an index version's encoder: stored results, re-runs, room tag sources, jobs and refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from django.conf import settings

from flatsite.jobs import services as jobs
from search.ml.encoders.base import Encoder, EncoderInfo
from search.ml.encoders.registry import register_encoder, unregister_encoder
from search.ml.images.loading import Preprocess
from search.models import IndexVersion, Job, Photo
from search.ops import evaluation
from search.ops.tasks import index_evaluate as evaluate_task
from tests import images
from tests.factories import ListingFactory
from tests.flatsite.jobs.sending import task_send_replace

pytestmark = pytest.mark.django_db
ENCODER = "test-pool4"


class Pool4Encoder(Encoder):
    """A tiny, deterministic encoder: the 4 x 4 average-pooled colours (48 numbers)."""

    def __init__(self, name: str, device: torch.device) -> None:
        super().__init__(EncoderInfo(name, 48, 32), Preprocess(image_size=32), device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 32, 32) -> (B, 48)."""
        return F.adaptive_avg_pool2d(x, 4).flatten(1)


@pytest.fixture
def pool_encoder() -> Iterator[str]:
    register_encoder(ENCODER, lambda device: Pool4Encoder(ENCODER, device), replace=True)
    yield ENCODER
    unregister_encoder(ENCODER)


def stored_photos(count: int, rooms: tuple[str, ...] = ("kitchen", "bath")) -> list[Photo]:
    """Processed photos whose normalised images exist under MEDIA_ROOT, room tags taking turns."""
    listing = ListingFactory()
    photos = []
    for i in range(count):
        data = images.jpeg(300 + i, (96, 72))
        rel = f"photos/eval-{i}.jpg"
        path = Path(settings.MEDIA_ROOT) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        photos.append(
            Photo.objects.create(
                listing=listing, uploader=listing.owner, original_name=f"{i}.jpg", image_path=rel,
                sha256_bytes=digest, sha256_pixels=digest, status=Photo.Status.INDEXED,
                room_tag=rooms[i % len(rooms)] if rooms else "",
            )
        )  # fmt: skip
    return photos


def version(encoder: str, number: int = 1, status: str = IndexVersion.Status.READY) -> IndexVersion:
    return IndexVersion.objects.create(encoder=encoder, version=number, status=status, count=1)


def test_an_evaluation_is_stored_on_the_version_with_its_sample_and_seed(pool_encoder: str) -> None:
    stored_photos(24)
    version(pool_encoder)
    row = evaluation.index_evaluate(pool_encoder, 1, sample_size=24, seed=7)
    ev = IndexVersion.objects.get(pk=row.pk).evaluation
    assert (ev["encoder"], ev["version"], ev["seed"], ev["sample_size"], ev["unreadable"]) == (
        pool_encoder,
        1,
        7,
        24,
        0,
    )
    assert ev["took_s"] >= 0 and ev["evaluated_at"] and ev["room_tag_sources"] == {"import": 24, "cluster": 0}
    assert 0.0 <= ev["near_duplicate"]["recall_at_1"] <= 1.0 and ev["near_duplicate"]["distractors"] == 24
    assert ev["room"]["tags"] == 2 and 0.0 <= ev["room"]["knn_purity"] <= 1.0 and "ari" in ev["room"]


def test_a_rerun_replaces_the_stored_evaluation(pool_encoder: str) -> None:
    stored_photos(24)
    version(pool_encoder)
    evaluation.index_evaluate(pool_encoder, 1, sample_size=24)
    first = IndexVersion.objects.get(encoder=pool_encoder).evaluation
    evaluation.index_evaluate(pool_encoder, 1, sample_size=10)
    second = IndexVersion.objects.get(encoder=pool_encoder).evaluation
    assert second["sample_size"] == 10 and second["evaluated_at"] >= first["evaluated_at"]
    assert second["room"]["skipped"] == "needs at least 20 tagged photos, found 10"


def test_moderator_cluster_names_tag_photos_without_an_imported_room(
    pool_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = stored_photos(22, rooms=())
    named = {p.pk: ("garden" if i % 2 else "hall") for i, p in enumerate(photos)}
    monkeypatch.setattr(evaluation, "photo_room_tags", lambda ids: {pid: named[pid] for pid in ids})
    version(pool_encoder)
    ev = evaluation.index_evaluate(pool_encoder, 1, sample_size=22).evaluation
    assert ev["room_tag_sources"] == {"import": 0, "cluster": 22} and ev["room"]["tags"] == 2


def test_an_unreadable_image_is_left_out_and_counted(pool_encoder: str) -> None:
    photos = stored_photos(5)
    (Path(settings.MEDIA_ROOT) / photos[0].image_path).write_bytes(b"not an image")
    version(pool_encoder)
    ev = evaluation.index_evaluate(pool_encoder, 1).evaluation
    assert ev["sample_size"] == 4 and ev["unreadable"] == 1 and ev["photos_considered"] == 5


def test_unknown_versions_encoders_and_empty_collections_are_refused(pool_encoder: str) -> None:
    with pytest.raises(LookupError, match="no test-pool4 index version 3"):
        evaluation.index_evaluate(pool_encoder, 3)
    version("no-such-encoder")
    with pytest.raises(ValueError, match="encoder no-such-encoder is not available"):
        evaluation.index_evaluate("no-such-encoder", 1)
    version(pool_encoder)
    with pytest.raises(ValueError, match="needs at least 2 processed photos, found 0"):
        evaluation.index_evaluate(pool_encoder, 1)


def test_an_evaluation_job_runs_once_at_a_time_and_stores_its_result(
    pool_encoder: str, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.EVALUATE, sent.append)
    stored_photos(6)
    version(pool_encoder)
    with django_capture_on_commit_callbacks(execute=True):
        job = evaluation.index_evaluate_enqueue(pool_encoder, 1)
    assert sent == [job.pk] and job.params == {"encoder": pool_encoder, "version": 1}
    with pytest.raises(ValueError, match="already queued or running"):
        evaluation.index_evaluate_enqueue(pool_encoder, 1)
    evaluate_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.done == job.total == 6 * 8
    assert job.result["recall_at_1"] == IndexVersion.objects.get().evaluation["near_duplicate"]["recall_at_1"]
    evaluate_task(job.pk)  # a redelivered message finds nothing to claim


def test_a_cancelled_evaluation_stores_nothing(pool_encoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    task_send_replace(monkeypatch, Job.Kind.EVALUATE, lambda job_id: None)
    stored_photos(4)
    version(pool_encoder)
    job = evaluation.index_evaluate_enqueue(pool_encoder, 1)
    assert jobs.job_claim(job.pk) is not None
    jobs.job_cancel(job.pk)
    assert evaluation.job_evaluate_run(job.pk).status == Job.Status.CANCELLED
    assert IndexVersion.objects.get().evaluation == {}


def test_failed_versions_cannot_be_evaluated(pool_encoder: str) -> None:
    version(pool_encoder, status=IndexVersion.Status.FAILED)
    with pytest.raises(ValueError, match="failed to build"):
        evaluation.index_evaluate_enqueue(pool_encoder, 1)


def test_after_a_build_the_new_index_and_the_unevaluated_search_index_are_queued(
    pool_encoder: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_send_replace(monkeypatch, Job.Kind.EVALUATE, lambda job_id: None)
    settings.FLATSITE_SEARCH_ENCODER = "test-search"
    register_encoder("test-search", lambda device: Pool4Encoder("test-search", device), replace=True)
    try:
        version("test-search", 1, IndexVersion.Status.LIVE)
        version(pool_encoder, 1)
        version(pool_encoder, 2, IndexVersion.Status.LIVE)
        queued = evaluation.index_evaluate_after_build(pool_encoder)
        assert [(j.params["encoder"], j.params["version"]) for j in queued] == [
            (pool_encoder, 2),
            ("test-search", 1),
        ]
        IndexVersion.objects.filter(encoder="test-search").update(evaluation={"near_duplicate": {}})
        Job.objects.all().delete()
        assert [j.params["encoder"] for j in evaluation.index_evaluate_after_build(pool_encoder)] == [
            pool_encoder
        ]
    finally:
        unregister_encoder("test-search")


@pytest.mark.parametrize(("gpu_queue", "queue"), [(True, "gpu"), (False, "default")])
def test_evaluation_goes_to_the_gpu_queue_only_when_gpu_workers_exist(
    gpu_queue: bool, queue: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLATSITE_GPU_QUEUE = gpu_queue
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(evaluate_task, "apply_async", lambda args, **kw: calls.append((args, kw)))
    jobs.task_send(Job.Kind.EVALUATE, 5)
    assert calls == [((5,), {"queue": queue})]
