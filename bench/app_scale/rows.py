"""Synthetic photos as the app's own rows: Listing, Photo and Feature created with bulk_create in chunks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.app_scale.vectors import cluster_centres, synthetic_chunk

CHUNK = 5_000  # rows per bulk_create: the whole collection is never in memory at once
PHOTOS_PER_LISTING = 20


@dataclass
class Synth:
    """What every synthetic batch needs: the owner, each encoder's centres, and how many were made so far."""

    owner: Any
    centres: dict[str, np.ndarray]  # encoder -> (C, D) unit centres
    seed: int
    noise: float
    made: int = 0
    bulk_s: float = 0.0  # seconds spent creating rows (photos, listings, features)

    @property
    def encoders(self) -> list[str]:
        """Encoders the synthetic photos get features for (the app's active ones)."""
        return list(self.centres)


def synth_setup(encoders: list[str], *, centres: int, spread: float, noise: float, seed: int) -> Synth:
    """Owner account and per-encoder centres drawn around the real photos' own features."""
    from flatsite.core import accounts
    from search.matching.feature_reads import feature_chunks

    accounts.roles_setup()
    owner = accounts.user_create(username="bench-synthetic", password=None, role="realtor")
    out: dict[str, np.ndarray] = {}
    for encoder in encoders:
        real = [vecs for _ids, vecs in feature_chunks(encoder) if vecs.size]
        if not real:
            raise SystemExit(f"no real {encoder} features were imported: nothing to grow synthetic ones from")
        rng = np.random.default_rng([seed, len(out)])
        out[encoder] = cluster_centres(np.vstack(real), centres, spread, rng)
    return Synth(owner=owner, centres=out, seed=seed, noise=noise)


def vectors_for(synth: Synth, encoder: str, start: int, n: int) -> np.ndarray:
    """(n, D) synthetic vectors of photos start..start+n of one encoder (the same on every rerun)."""
    return synthetic_chunk(
        synth.centres[encoder], start, n, noise=synth.noise, seed=synth.seed, stream=encoder
    )


def _photos_create(synth: Synth, n: int, status: str) -> np.ndarray:
    from search.models import Listing, Photo

    start = synth.made
    first, last = start // PHOTOS_PER_LISTING, (start + n - 1) // PHOTOS_PER_LISTING
    listings = Listing.objects.bulk_create(
        [
            Listing(title=f"Synthetic flat {i}", zipcode="90000", owner=synth.owner)
            for i in range(first, last + 1)
        ]
    )
    photos = [
        Photo(
            listing=listings[(start + j) // PHOTOS_PER_LISTING - first],
            uploader=synth.owner,
            original_name=f"synthetic_{start + j}.jpg",
            image_path=f"synthetic/{start + j}.jpg",  # never read: a search lists rows, it opens no file
            sha256_bytes=f"{start + j:064x}",
            status=status,
        )
        for j in range(n)
    ]
    created = Photo.objects.bulk_create(photos)
    return np.asarray([p.pk for p in created], dtype=np.int64)


def synth_batch(synth: Synth, n: int, status: str = "processed") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Create n photos with a feature per encoder, in chunks of CHUNK: (ids, {encoder: vectors})."""
    from django.db import reset_queries, transaction

    from search.models import Feature

    ids_parts: list[np.ndarray] = []
    vec_parts: dict[str, list[np.ndarray]] = {e: [] for e in synth.encoders}
    started = time.perf_counter()
    for lo in range(0, n, CHUNK):
        size = min(CHUNK, n - lo)
        start = synth.made
        with transaction.atomic():
            ids = _photos_create(synth, size, status)
            for encoder in synth.encoders:
                vecs = vectors_for(synth, encoder, start, size)
                Feature.objects.bulk_create(
                    [
                        Feature(photo_id=int(pid), encoder=encoder, dim=vecs.shape[1], data=vecs[j].tobytes())
                        for j, pid in enumerate(ids.tolist())
                    ]
                )
                vec_parts[encoder].append(vecs)
        synth.made += size
        ids_parts.append(ids)
        reset_queries()  # DEBUG keeps every query otherwise
    synth.bulk_s += time.perf_counter() - started
    ids = np.concatenate(ids_parts) if ids_parts else np.empty(0, np.int64)
    return ids, {e: np.vstack(v) for e, v in vec_parts.items() if v}


def synth_rows_only(synth: Synth, n: int) -> None:
    """Create n photos with features without keeping their vectors (the bulk before a rebuild)."""
    for lo in range(0, n, CHUNK):
        synth_batch(synth, min(CHUNK, n - lo))
