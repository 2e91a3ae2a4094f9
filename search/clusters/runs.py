"""Clustering runs: queue one as a job, fit it with live progress, carry decisions over, store, go current."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from flatsite.core import storage
from flatsite.jobs import runner
from flatsite.jobs import services as jobs
from search.clusters import assign as cluster_assign
from search.clusters import carry as cluster_carry
from search.clusters import selectors as selectors_clusters
from search.listings import selectors
from search.models import Cluster, ClusteringRun, Job, Membership

log = logging.getLogger(__name__)

# (stage, share of the progress bar); the ml stages report through fit_clusters' on_stage.
STAGES: tuple[tuple[str, int], ...] = (
    ("features", 5),
    ("pca", 5),
    ("umap", 40),
    ("hdbscan", 10),
    ("map", 25),
    ("assign", 5),
    ("carry_over", 5),
    ("save", 5),
)
STAGE_TEXT = {
    "features": "loading features",
    "pca": "reducing dimensions (PCA)",
    "umap": "embedding (UMAP)",
    "hdbscan": "finding clusters (HDBSCAN)",
    "map": "drawing the 2-D map (UMAP)",
    "assign": "placing the remaining photos",
    "carry_over": "carrying moderator decisions over",
    "save": "saving clusters",
}
_BATCH = 2000


def cluster_params(encoder: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Full ClusterConfig dict: defaults, then the current run's parameters, then `params`; validated."""
    from search.ml.clusters.pipeline import ClusterConfig, config_from_dict, config_to_dict

    base: dict[str, Any] = {}
    current = selectors_clusters.current_run(encoder)
    if current is not None:
        base.update(current.params)
    unknown = set(params or {}) - set(config_to_dict(ClusterConfig()))
    if unknown:
        raise ValidationError(f"unknown clustering parameters: {', '.join(sorted(unknown))}")
    try:
        cfg = config_from_dict({**base, **(params or {})})
    except TypeError as exc:
        raise ValidationError(f"bad clustering parameters: {exc}") from exc
    if not isinstance(cfg.min_cluster_size, int) or cfg.min_cluster_size < 2:
        raise ValidationError("min_cluster_size must be an integer of at least 2")
    return config_to_dict(cfg)


def clustering_start(
    *,
    user: Any = None,
    encoder: str | None = None,
    params: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> Job:
    """Create (and unless enqueue=False, queue) a clustering job; refuses while one is in progress."""
    encoder = encoder or settings.FLATSITE_CLUSTER_ENCODER
    with transaction.atomic():
        busy = selectors_clusters.clustering_job_active(encoder)
        if busy is not None:
            raise ValidationError(f"clustering job #{busy.pk} is already {busy.status}")
        config = cluster_params(encoder, params)
        job = jobs.job_create(
            Job.Kind.CLUSTER, user=user, params={"encoder": encoder, "config": config}, total=100
        )
        if enqueue:
            jobs.job_enqueue(job)
    return job


def clustering_run_inline(job_id: int) -> Job:
    """Run a clustering job in the calling process (CLI --inline)."""
    if jobs.job_claim(job_id, worker="inline") is None:
        return Job.objects.get(pk=job_id)
    return job_cluster_run(job_id)


class _Progress:
    """Turns stage reports into job progress (0..100) with a readable message."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.offsets: dict[str, int] = {}
        total = 0
        for name, weight in STAGES:
            self.offsets[name] = total
            total += weight
        self.weights = dict(STAGES)

    def __call__(self, stage: str, fraction: float) -> None:
        done = self.offsets.get(stage, 0) + int(self.weights.get(stage, 0) * min(max(fraction, 0.0), 1.0))
        text = STAGE_TEXT.get(stage, stage)
        jobs.job_progress(self.job_id, done=done, total=100, message=f"{text}…" if fraction < 1 else text)


@contextmanager
def _heartbeat(job_id: int) -> Iterator[None]:
    """Keep the job's heartbeat fresh while a long stage (UMAP) runs without reporting."""
    every = max(1.0, settings.FLATSITE_JOB_HEARTBEAT_TIMEOUT / 4)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    jobs.job_heartbeat(job_id)
                except Exception:  # a missed beat is retried; the fit must not die of it
                    log.warning("heartbeat of job %s failed", job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"job-{job_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)


def job_cluster_run(job_id: int) -> Job:
    """Body of a claimed clustering job: fit, carry over, store, make current; finishes the job."""
    from search.ml.clusters.pipeline import FitCancelled

    run = _run_for_job(Job.objects.get(pk=job_id))

    def work(ctx: runner.JobContext) -> dict[str, Any]:
        ctx.result["run"] = run.pk  # on the job whatever the outcome
        try:
            with _heartbeat(job_id):
                _fit_and_store(run, job_id)
        except FitCancelled:
            _run_close(run.pk, ClusteringRun.Status.CANCELLED, "cancelled")
            raise runner.JobStopped from None
        except Exception as exc:
            _run_close(run.pk, ClusteringRun.Status.FAILED, str(exc))
            raise
        run.refresh_from_db()
        return {"summary": _job_summary(run)}

    return runner.job_run(job_id, work, label="clustering")


def _run_for_job(job: Job) -> ClusteringRun:
    """The job's run row; a retried job (its worker died) starts its run afresh."""
    with transaction.atomic():
        run = ClusteringRun.objects.filter(job=job).first()
        if run is None:
            return ClusteringRun.objects.create(
                job=job, encoder=job.params["encoder"], params=job.params["config"], created_by=job.created_by
            )
        run.clusters.all().delete()
        run.memberships.all().delete()
        run.status, run.summary, run.is_current = ClusteringRun.Status.RUNNING, {}, False
        run.save(update_fields=["status", "summary", "is_current"])
        return run


def _run_close(run_id: int, status: str, reason: str) -> None:
    ClusteringRun.objects.filter(pk=run_id).update(
        status=status, is_current=False, finished_at=timezone.now(), summary={"error": reason[:2000]}
    )


def _fit_and_store(run: ClusteringRun, job_id: int) -> None:
    from search.ml.clusters.pipeline import config_from_dict, fit_clusters

    progress = _Progress(job_id)
    progress("features", 0.0)
    ids, vectors = selectors.features_matrix(run.encoder)
    if len(ids) == 0:
        raise ValueError(f"no photos have {run.encoder} features yet; extract features first")
    cfg = config_from_dict(run.params)
    result = fit_clusters(vectors, cfg, on_stage=progress, should_stop=lambda: jobs.job_should_stop(job_id))
    progress("carry_over", 0.0)
    previous = selectors_clusters.current_run(run.encoder)
    carried = cluster_carry.carry_from(previous, result.labels, ids)
    progress("save", 0.0)
    model_rel = _model_save(run, result.model.to_bytes())
    with transaction.atomic():
        _store(run, ids, result, carried)
        run.model_path, run.previous = model_rel, previous
        run.save(update_fields=["model_path", "previous"])
        run_make_current(run.pk)
    # Photos whose features arrived while the run was fitting are placed into it at once.
    cluster_assign.run_assign_missing(run)
    progress("save", 1.0)


def _model_save(run: ClusteringRun, data: bytes) -> str:
    relative = f"clusters/run-{run.pk}-{storage.new_name('.npz')}"
    storage.write_atomic(cluster_assign.model_file(relative), data)
    return relative


def _store(run: ClusteringRun, ids: np.ndarray, result: Any, carried: cluster_carry.Carried) -> None:
    """Create the run's clusters (carried names and keys) and memberships in bulk."""
    by_label = _clusters_create(run, result.model.n_clusters, carried)
    labels = carried.labels
    changed = labels != result.labels
    members: list[Membership] = []
    for i, photo_id in enumerate(ids.tolist()):
        label = int(labels[i])
        decided = bool(changed[i])
        members.append(
            Membership(
                run=run,
                photo_id=photo_id,
                cluster=by_label.get(label),
                probability=float(result.probabilities[i]),
                centrality=float(result.centrality[i]),
                outlier_score=float(result.outlier_scores[i]),
                raw_noise=bool(result.raw_noise[i]),
                x=float(result.map_xy[i, 0]) if result.map_xy.shape[1] else 0.0,
                y=float(result.map_xy[i, 1]) if result.map_xy.shape[1] > 1 else 0.0,
                source=Membership.Source.CONSTRAINT if decided else Membership.Source.FIT,
            )
        )
    Membership.objects.bulk_create(members, batch_size=_BATCH)
    noise = int((labels < 0).sum())
    run.summary = {
        "photos": len(ids),
        "clusters": len(by_label),
        "noise": noise,
        "stats": result.stats,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        **cluster_carry.summary(carried, by_label),
    }
    run.photo_count, run.cluster_count, run.noise_count = len(ids), len(by_label), noise
    run.status, run.finished_at = ClusteringRun.Status.READY, timezone.now()
    run.save(
        update_fields=["summary", "photo_count", "cluster_count", "noise_count", "status", "finished_at"]
    )


def _clusters_create(
    run: ClusteringRun, n_clusters: int, carried: cluster_carry.Carried
) -> dict[int, Cluster]:
    rows: list[Cluster] = []
    for label in range(n_clusters):
        prior = carried.prior_for(label)
        rows.append(
            Cluster(
                run=run,
                label=label,
                key=prior.key if prior else 0,
                name=prior.name if prior else "",
                state=prior.state if prior else Cluster.State.UNREVIEWED,
                carried_from=prior,
            )
        )
    Cluster.objects.bulk_create(rows)
    fresh = [c for c in rows if c.key == 0]
    for cluster in fresh:  # a new cluster's identity is its own id
        cluster.key = cluster.pk
    Cluster.objects.bulk_update(fresh, ["key"], batch_size=_BATCH)
    return {c.label: c for c in rows if c.label is not None}


def run_make_current(run_id: int) -> ClusteringRun:
    """Make a ready run the current one of its encoder (moderator pages and tags follow it)."""
    with transaction.atomic():
        run = ClusteringRun.objects.select_for_update().get(pk=run_id)
        if run.status != ClusteringRun.Status.READY:
            raise ValidationError(f"run #{run.pk} is {run.status}, not ready")
        ClusteringRun.objects.filter(encoder=run.encoder, is_current=True).exclude(pk=run.pk).update(
            is_current=False
        )
        run.is_current = True
        run.save(update_fields=["is_current"])
    return run


def run_switch_current(run_id: int) -> ClusteringRun:
    """Admin: go back to (or forward to) another ready run, placing photos it has not seen yet."""
    run = run_make_current(run_id)
    cluster_assign.run_assign_missing(run)
    return run


def _job_summary(run: ClusteringRun) -> dict[str, Any]:
    keys = (
        "photos",
        "clusters",
        "noise",
        "carried",
        "conflict_count",
        "moves_applied",
        "cannot_links_applied",
    )
    return {k: run.summary[k] for k in keys if k in run.summary}


def model_path(run: ClusteringRun) -> Path | None:
    """Absolute path of a run's saved model, if it has one."""
    return cluster_assign.model_file(run.model_path) if run.model_path else None
