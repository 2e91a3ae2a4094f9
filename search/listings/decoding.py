"""Decode an untrusted image the way settings say: in a limited child process (default) or in-process."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from search.ml.images.normalise import ImageLimits, Normalised, normalise
from search.ml.images.safe_decode import ChildLimits, normalise_isolated


def child_limits() -> ChildLimits:
    """Memory and wall-time limits of one decode, from settings."""
    return ChildLimits(
        memory_mb=settings.FLATSITE_DECODE_MEMORY_MB, timeout_s=settings.FLATSITE_DECODE_TIMEOUT_S
    )


def image_normalise(
    path: Path, name: str, limits: ImageLimits, *, with_image: bool = True, derivatives: bool = True
) -> Normalised:
    """Normalise an uploaded image; any decoder failure, crash, timeout or memory blow-up is ImageRejected.

    with_image=False skips sending the full pixels back from the child (the result's image is then the
    normalised JPEG); callers that only store derivatives and hashes should pass it. derivatives=False
    skips encoding the stored JPEG and thumbnail (a search query is never stored).
    """
    if not settings.FLATSITE_DECODE_IN_CHILD:
        return normalise(path, name, limits, derivatives=derivatives)
    return normalise_isolated(
        path, name, limits, child_limits(), with_image=with_image, derivatives=derivatives
    )
