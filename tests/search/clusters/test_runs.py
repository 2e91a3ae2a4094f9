"""Clustering jobs: stored runs, per-stage progress, the current run, provisional placement of late photos."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from flatsite.jobs import services as jobs
from search.clusters import actions as cluster_actions
from search.clusters import assign as cluster_assign
from search.clusters import runs as clusters
from search.models import Cluster, ClusteringRun, Job, Membership
from tests.search.clusters.fixtures import (
    SMALL_PARAMS,
    blob_centres,
    blob_photos,
    blob_vectors,
    photos_with_features,
    run_inline,
)

pytestmark = pytest.mark.django_db


def _cluster_of(run: ClusteringRun, photos: list[Any]) -> Counter[int | None]:
    return Counter(Membership.objects.filter(run=run, photo__in=photos).values_list("cluster_id", flat=True))


def test_clustering_job_stores_run_with_clusters_memberships_and_map(listing: Any, admin_user: Any) -> None:
    blobs = blob_photos(listing, (30, 25, 20))
    job = run_inline(admin_user)
    assert job.status == Job.Status.SUCCEEDED, job.error
    run = ClusteringRun.objects.get(pk=job.result["run"])
    assert run.is_current and run.status == ClusteringRun.Status.READY
    assert run.params["min_cluster_size"] == SMALL_PARAMS["min_cluster_size"]
    assert (run.photo_count, run.cluster_count) == (75, 3)
    assert run.memberships.count() == 75
    for blob in blobs:  # each blob is one cluster
        ((cluster_id, n),) = _cluster_of(run, blob).most_common(1)
        assert cluster_id is not None and n >= len(blob) - 1
    xy = np.array(list(run.memberships.values_list("x", "y")))
    assert xy.std(0).min() > 0.1  # a real 2-D layout, not a placeholder
    assert run.memberships.filter(probability__gt=0).count() >= 70
    assert set(run.summary) >= {"photos", "clusters", "noise", "stats", "timings"}
    assert job.result["summary"]["clusters"] == 3 and (job.done, job.total) == (100, 100)
    assert run.model_path and clusters.model_path(run).is_file()  # type: ignore[union-attr]


def test_job_progress_names_each_stage_in_order(listing: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    blob_photos(listing, (20, 20))
    seen: list[tuple[int, str]] = []
    real = jobs.job_progress

    def spy(job_id: int, **kwargs: Any) -> Job:
        seen.append((kwargs["done"], kwargs.get("message") or ""))
        return real(job_id, **kwargs)

    monkeypatch.setattr(jobs, "job_progress", spy)
    assert run_inline().status == Job.Status.SUCCEEDED
    messages = [m for _, m in seen]
    order = [
        clusters.STAGE_TEXT[s] for s in ("features", "pca", "umap", "hdbscan", "map", "carry_over", "save")
    ]
    positions = [next(i for i, m in enumerate(messages) if m.startswith(text)) for text in order]
    assert positions == sorted(positions)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # the bar only moves forward


def test_a_new_run_becomes_current_and_the_older_run_stays_browsable(listing: Any) -> None:
    blob_photos(listing, (20, 20))
    first = ClusteringRun.objects.get(pk=run_inline().result["run"])
    second = ClusteringRun.objects.get(pk=run_inline().result["run"])
    first.refresh_from_db()
    assert second.is_current and not first.is_current
    assert second.previous_id == first.pk
    assert first.memberships.count() == 40 and first.clusters.count() == 2
    clusters.run_switch_current(first.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_current and not second.is_current


def test_too_few_photos_fail_the_job_with_the_reason(listing: Any) -> None:
    blob_photos(listing, (5,))
    job = run_inline()
    assert job.status == Job.Status.FAILED and "at least" in job.error
    run = ClusteringRun.objects.get(job=job)
    assert run.status == ClusteringRun.Status.FAILED and not run.is_current


def test_no_features_fail_the_job_with_the_reason(db: Any) -> None:
    job = run_inline()
    assert job.status == Job.Status.FAILED and "no photos have" in job.error


def test_a_second_run_is_refused_while_one_is_in_progress(db: Any) -> None:
    first = clusters.clustering_start(params=SMALL_PARAMS, enqueue=False)
    with pytest.raises(ValidationError, match=f"#{first.pk}"):
        clusters.clustering_start(enqueue=False)


def test_unknown_parameters_are_refused(db: Any) -> None:
    with pytest.raises(ValidationError, match="unknown"):
        clusters.clustering_start(params={"min_custer_size": 3}, enqueue=False)
    with pytest.raises(ValidationError, match="min_cluster_size"):
        clusters.clustering_start(params={"min_cluster_size": 1}, enqueue=False)


def test_a_cancelled_job_leaves_a_cancelled_run_and_keeps_the_current_one(listing: Any) -> None:
    blob_photos(listing, (20, 20))
    current = ClusteringRun.objects.get(pk=run_inline().result["run"])
    job = clusters.clustering_start(enqueue=False)
    jobs.job_claim(job.pk)
    jobs.job_cancel(job.pk)
    job = clusters.job_cluster_run(job.pk)
    assert job.status == Job.Status.CANCELLED
    assert ClusteringRun.objects.get(job=job).status == ClusteringRun.Status.CANCELLED
    current.refresh_from_db()
    assert current.is_current


def test_a_retried_job_starts_its_run_afresh(listing: Any) -> None:
    blob_photos(listing, (20, 20))
    job = clusters.clustering_start(params=SMALL_PARAMS, enqueue=False)
    jobs.job_claim(job.pk)
    clusters.job_cluster_run(job.pk)
    run = ClusteringRun.objects.get(job=job)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)  # as if the worker died before finishing
    clusters.job_cluster_run(job.pk)
    assert ClusteringRun.objects.filter(job=job).count() == 1
    assert run.memberships.count() == 40 and run.clusters.count() == 2


def test_photos_arriving_after_the_run_are_placed_provisionally_within_seconds(listing: Any) -> None:
    blobs = blob_photos(listing, (25, 25), seed=3)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    target = _cluster_of(run, blobs[1]).most_common(1)[0][0]
    late = photos_with_features(listing, blob_vectors(blob_centres(2, 3)[1], 4, seed=99), prefix="late")
    started = time.perf_counter()
    placed = cluster_assign.photos_assign_provisional([p.pk for p in late])
    seconds = time.perf_counter() - started
    assert placed == 4 and seconds < 5
    rows = Membership.objects.filter(run=run, photo__in=late)
    assert {m.source for m in rows} == {Membership.Source.PROVISIONAL}
    assert {m.cluster_id for m in rows} == {target}
    assert all(m.provisional for m in rows)
    assert cluster_assign.photos_assign_provisional([p.pk for p in late]) == 0  # already placed


def test_provisional_photos_follow_a_merge(listing: Any, moderator: Any) -> None:
    blobs = blob_photos(listing, (20, 20), seed=4)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    a = _cluster_of(run, blobs[0]).most_common(1)[0][0]
    b = _cluster_of(run, blobs[1]).most_common(1)[0][0]
    cluster_actions.clusters_merge(a, [b], user=moderator)
    late = photos_with_features(listing, blob_vectors(blob_centres(2, 4)[1], 2, seed=5), prefix="late")
    assert cluster_assign.photos_assign_provisional([p.pk for p in late]) == 2
    assert set(Membership.objects.filter(run=run, photo__in=late).values_list("cluster_id", flat=True)) == {a}


def test_nothing_is_placed_without_a_current_run(listing: Any) -> None:
    photos = photos_with_features(listing, blob_vectors(blob_centres(1)[0], 2, seed=1))
    assert cluster_assign.photos_assign_provisional([p.pk for p in photos]) == 0


def test_photos_featured_while_the_run_was_fitting_are_placed_when_it_finishes(
    listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob_photos(listing, (20, 20), seed=6)
    real = clusters.cluster_carry.carry_from
    late: list[Any] = []

    def arrive_meanwhile(*args: Any) -> Any:
        late.extend(
            photos_with_features(listing, blob_vectors(blob_centres(2, 6)[0], 3, seed=7), prefix="late")
        )
        return real(*args)

    monkeypatch.setattr(clusters.cluster_carry, "carry_from", arrive_meanwhile)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    sources = set(Membership.objects.filter(run=run, photo__in=late).values_list("source", flat=True))
    assert sources == {Membership.Source.PROVISIONAL} and run.memberships.count() == 43


def test_a_missing_model_file_places_nothing_instead_of_failing(listing: Any) -> None:
    blob_photos(listing, (20, 20))
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    clusters.model_path(run).unlink()  # type: ignore[union-attr]
    late = photos_with_features(listing, blob_vectors(blob_centres(2)[0], 1, seed=8), prefix="late")
    assert cluster_assign.photos_assign_provisional([late[0].pk]) == 0
    assert Cluster.objects.filter(run=run).count() == 2
