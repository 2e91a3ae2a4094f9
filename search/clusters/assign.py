"""Incremental assignment: place photos that arrive after the current run into its clusters, provisionally."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from search.clusters import selectors as selectors_clusters
from search.listings import selectors
from search.models import Cluster, ClusteringRun, Feature, Membership, Photo

if TYPE_CHECKING:
    from search.ml.clusters.pipeline import ClusterModel

log = logging.getLogger(__name__)
_models: dict[str, tuple[float, ClusterModel]] = {}
_models_lock = threading.Lock()


def model_file(relative: str) -> Path:
    """Absolute path of a saved cluster model under DATA_DIR (refuses paths leaving it)."""
    root = Path(settings.DATA_DIR).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError(f"cluster model path escapes the data folder: {relative!r}")
    return path


def run_model(run: ClusteringRun) -> ClusterModel | None:
    """The run's fitted model, cached per process until its file changes; None when missing."""
    from search.ml.clusters.pipeline import ClusterModel

    if not run.model_path:
        return None
    path = model_file(run.model_path)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        log.warning("model file of clustering run %s is missing: %s", run.pk, path)
        return None
    with _models_lock:
        cached = _models.get(str(path))
        if cached is None or cached[0] != mtime:
            cached = (mtime, ClusterModel.load(path))
            _models.clear()  # one model per process: the current run's
            _models[str(path)] = cached
    return cached[1]


def photos_assign_provisional(photo_ids: Iterable[int]) -> int:
    """Place photos (with stored features) into the current run's clusters as provisional; returns count."""
    run = selectors_clusters.current_run()
    if run is None:
        return 0
    return run_assign(run, list(photo_ids))


def run_assign_missing(run: ClusteringRun) -> int:
    """Place every photo with features that a run does not hold yet (e.g. arrived while it was fitting)."""
    in_run = Membership.objects.filter(run=run, photo_id=OuterRef("photo_id"))
    missing = (
        Feature.objects.filter(encoder=run.encoder, photo__duplicate_of__isnull=True)
        .exclude(photo__status=Photo.Status.REJECTED)
        .filter(~Exists(in_run))
        .values_list("photo_id", flat=True)
    )
    return run_assign(run, list(missing))


def run_assign(run: ClusteringRun, photo_ids: list[int]) -> int:
    """Place photos that a run does not hold yet into it, without refitting; returns how many were placed."""
    from search.ml.clusters.pipeline import assign_full

    held = set(Membership.objects.filter(run=run, photo_id__in=photo_ids).values_list("photo_id", flat=True))
    wanted = sorted(set(photo_ids) - held)
    if not wanted:
        return 0
    ids, vectors = selectors.features_matrix(run.encoder, wanted)
    model = run_model(run) if len(ids) else None
    if model is None:
        return 0
    if vectors.shape[1] != model.pca_mean.shape[0]:
        log.warning(
            "features of %s have %s dims, run %s expects %s",
            run.encoder,
            vectors.shape[1],
            run.pk,
            model.pca_mean.shape[0],
        )
        return 0
    done = assign_full(model, vectors)
    targets = label_targets(run)
    rows = [
        Membership(
            run=run,
            photo_id=photo_id,
            cluster=targets.get(int(done.labels[i])),
            probability=float(done.probabilities[i]),
            centrality=float(done.centrality[i]),
            outlier_score=float(done.outlier_scores[i]),
            x=float(done.map_xy[i, 0]) if done.map_xy.shape[1] else 0.0,
            y=float(done.map_xy[i, 1]) if done.map_xy.shape[1] > 1 else 0.0,
            source=Membership.Source.PROVISIONAL,
        )
        for i, photo_id in enumerate(ids.tolist())
    ]
    with transaction.atomic():
        # A photo placed meanwhile by another worker keeps that placement.
        Membership.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def label_targets(run: ClusteringRun) -> dict[int, Cluster]:
    """Model label -> the active cluster it stands for now (following merges; dissolved clusters: none)."""
    clusters: dict[int, Any] = {c.pk: c for c in Cluster.objects.filter(run=run)}
    targets: dict[int, Cluster] = {}
    for cluster in clusters.values():
        if cluster.label is None:
            continue
        target, hops = cluster, 0
        while (
            target.state == Cluster.State.MERGED
            and target.merged_into_id in clusters
            and hops < len(clusters)
        ):
            target, hops = clusters[target.merged_into_id], hops + 1
        if target.state in (Cluster.State.UNREVIEWED, Cluster.State.APPROVED):
            targets[cluster.label] = target
    return targets


def warm_up() -> None:
    """Import the clustering stack and compile its numba kernels (so the first real placement is fast)."""
    import numpy as np

    from search.ml.clusters.pipeline import ClusterConfig, assign_full, fit_clusters

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(30, 8)) + 6 * k for k in range(2)]).astype(np.float32)
    cfg = ClusterConfig(pca_dim=4, min_cluster_size=5, umap_neighbors=5, umap_epochs=20, transform_epochs=5)
    assign_full(fit_clusters(x, cfg).model, x[:2])
