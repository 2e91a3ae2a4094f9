"""Photos with synthetic features for clustering tests: well-separated Gaussian blobs, no real encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from flatsite.core import storage
from search.clusters import runs as clusters
from search.models import Cluster, ClusteringRun, Feature, Listing, Membership, Photo
from tests import images

#: Small, fast parameters for a few dozen photos.
SMALL_PARAMS: dict[str, Any] = {
    "pca_dim": 8,
    "min_cluster_size": 6,
    "umap_neighbors": 8,
    "umap_epochs": 60,
    "transform_epochs": 20,
    "outlier_neighbors": 5,
    "reassign_neighbors": 5,
}
DIM = 24


def blob_centres(n: int, seed: int = 0) -> np.ndarray:
    """(n, DIM) well separated cluster centres."""
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32) * 8.0


def blob_vectors(centre: np.ndarray, count: int, seed: int) -> np.ndarray:
    """(count, DIM) float32 points around one centre."""
    return (centre + np.random.default_rng(seed).normal(size=(count, DIM))).astype(np.float32)


def photos_with_features(
    listing: Listing,
    vectors: np.ndarray,
    *,
    prefix: str = "room",
    thumbs: bool = False,
    encoder: str | None = None,
) -> list[Photo]:
    """Processed photos with one stored feature each (and small real thumbnails when thumbs=True)."""
    encoder = encoder or settings.FLATSITE_CLUSTER_ENCODER
    start = Photo.objects.count()
    photos = []
    for i, vector in enumerate(vectors):
        n = start + i
        photo = Photo.objects.create(
            listing=listing,
            uploader=listing.owner,
            original_name=f"{prefix}_{n}.jpg",
            sha256_bytes=f"{n:064x}",
            status=Photo.Status.PROCESSED,
            image_path=f"photos/test-{n}.jpg",
            thumb_path=f"thumbs/test-{n}.jpg",
            width=320,
            height=240,
        )
        if thumbs:
            data = images.jpeg(n, (180, 130), quality=70)
            for rel in (photo.image_path, photo.thumb_path):
                storage.write_atomic(Path(storage.media_path(rel)), data)
        Feature.objects.create(
            photo=photo, encoder=encoder, dim=len(vector), data=vector.astype(np.float32).tobytes()
        )
        photos.append(photo)
    return photos


def blob_photos(
    listing: Listing, sizes: tuple[int, ...], seed: int = 0, thumbs: bool = False
) -> list[list[Photo]]:
    """One list of photos per blob."""
    centres = blob_centres(len(sizes), seed)
    return [
        photos_with_features(
            listing, blob_vectors(centres[k], n, seed + 10 + k), prefix=f"blob{k}", thumbs=thumbs
        )
        for k, n in enumerate(sizes)
    ]


def run_inline(user: Any = None, params: dict[str, Any] | None = None) -> Any:
    """Start and run a clustering job here; returns the finished job."""
    job = clusters.clustering_start(user=user, params={**SMALL_PARAMS, **(params or {})}, enqueue=False)
    return clusters.clustering_run_inline(job.pk)


def fake_run(blobs: list[list[Photo]], encoder: str | None = None) -> ClusteringRun:
    """A current, ready run with one cluster per blob, written directly (no fitting: fast page tests)."""
    run = ClusteringRun.objects.create(
        encoder=encoder or settings.FLATSITE_CLUSTER_ENCODER,
        status=ClusteringRun.Status.READY,
        params={**SMALL_PARAMS},
        photo_count=sum(len(b) for b in blobs),
        cluster_count=len(blobs),
    )
    clusters.run_make_current(run.pk)
    rng = np.random.default_rng(len(blobs))
    for label, blob in enumerate(blobs):
        cluster = Cluster.objects.create(run=run, label=label)
        Cluster.objects.filter(pk=cluster.pk).update(key=cluster.pk)
        Membership.objects.bulk_create(
            Membership(
                run=run,
                photo=photo,
                cluster=cluster,
                probability=float(rng.uniform(0.2, 1.0)),
                centrality=float(rng.uniform()),
                x=float(label * 10 + rng.normal()),
                y=float(rng.normal()),
            )
            for photo in blob
        )
    run.refresh_from_db()
    return run
