"""Selectors that read stored feature vectors in bounded chunks (never the whole collection at once)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from django.db.models import QuerySet

from search.models import Feature, Photo

CHUNK = 10_000  # rows per query: ~50 MB of 1280-d float32 vectors at most in memory


def _indexable(encoder: str) -> QuerySet[Feature]:
    """Feature rows an index of ``encoder`` holds: stored originals (not rejected, not duplicates)."""
    return Feature.objects.filter(encoder=encoder, photo__duplicate_of__isnull=True).exclude(
        photo__status=Photo.Status.REJECTED
    )


def feature_count(encoder: str) -> int:
    """How many photos an index of ``encoder`` should hold."""
    return _indexable(encoder).count()


def feature_ids(encoder: str) -> np.ndarray:
    """Ascending photo ids (N,) int64 with indexable ``encoder`` features (ids only: 8 bytes a photo)."""
    ids = _indexable(encoder).order_by("photo_id").values_list("photo_id", flat=True)
    return np.fromiter(ids.iterator(chunk_size=CHUNK), dtype=np.int64)


def feature_chunks(
    encoder: str, *, photo_ids: np.ndarray | None = None, chunk: int = CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids (B,), vectors (B, D) float32) in ascending id order, ``chunk`` rows per query (keyset paging)."""
    if photo_ids is not None:
        wanted = np.unique(np.asarray(photo_ids, dtype=np.int64))
        for lo in range(0, wanted.size, chunk):
            part = wanted[lo : lo + chunk].tolist()
            yield _rows(_indexable(encoder).filter(photo_id__in=part).order_by("photo_id"))
        return
    last = -1
    while True:
        ids, vecs = _rows(_indexable(encoder).filter(photo_id__gt=last).order_by("photo_id")[:chunk])
        if ids.size == 0:
            return
        last = int(ids[-1])
        yield ids, vecs


def _rows(qs: QuerySet[Feature]) -> tuple[np.ndarray, np.ndarray]:
    rows = list(qs.values_list("photo_id", "data"))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vecs = np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows])  # (B, D)
    return ids, vecs


def feature_mean(encoder: str) -> tuple[np.ndarray | None, int]:
    """(mean (D,) float64 of every indexable vector, count), summed chunk by chunk; (None, 0) if none."""
    total: np.ndarray | None = None
    n = 0
    for _ids, vecs in feature_chunks(encoder):
        part = vecs.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
        n += vecs.shape[0]
    return (None, 0) if total is None else (total / n, n)
