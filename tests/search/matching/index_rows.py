"""Photo rows with small fake feature vectors, for index service tests (no images, no encoder)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from search.models import Feature, Photo

ENCODER = "test-dim8"
DIM = 8
_serial = itertools.count()


def unit_vector(seed: int, dim: int = DIM) -> np.ndarray:
    """A deterministic unit vector (dim,) float32."""
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


def photo_with_feature(listing: Any, seed: int, encoder: str = ENCODER) -> tuple[Photo, np.ndarray]:
    """A processed photo of listing and its stored feature vector from encoder."""
    n = next(_serial)
    photo = Photo.objects.create(
        listing=listing,
        uploader=listing.owner,
        original_name=f"fake-{n}.jpg",
        sha256_bytes=f"{n:064x}",
        sha256_pixels=f"{n:063x}f",
        phash=f"{seed % (1 << 63):016x}",
        status=Photo.Status.PROCESSED,
        image_path=f"photos/fake-{n}.jpg",
    )
    vec = unit_vector(seed)
    Feature.objects.create(photo=photo, encoder=encoder, dim=vec.size, data=vec.tobytes())
    return photo, vec
