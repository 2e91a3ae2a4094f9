"""Confirmed matches between stored photos, computed once per newly indexed photo."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

from search.ml.match.levels import Level
from search.models import Photo, PhotoMatch

log = logging.getLogger(__name__)
STRONG_LEVELS = (Level.EXACT.value, Level.EDITED.value, Level.SAME_ROOM.value)


def photo_matches_compute(photo_ids: list[int], *, on_step: Callable[[int], None] | None = None) -> int:
    """Search each photo against the collection and record its copy / same-room matches."""
    from search.matching.engine import image_search, query_from_photo

    created = 0
    photos = Photo.objects.filter(pk__in=photo_ids, duplicate_of__isnull=True).exclude(image_path="")
    for done, photo in enumerate(photos.order_by("id"), start=1):
        result = image_search(query_from_photo(photo), k=0)
        rows = [
            PhotoMatch(
                photo_a_id=min(photo.pk, r.photo.pk),
                photo_b_id=max(photo.pk, r.photo.pk),
                level=r.level,
                score=r.score,
                evidence=r.evidence,
            )
            for r in result.matches
            if r.level in STRONG_LEVELS and r.photo.duplicate_of_id is None and r.photo.pk != photo.pk
        ]
        with transaction.atomic():
            created += len(PhotoMatch.objects.bulk_create(rows, ignore_conflicts=True))
        if on_step is not None:
            on_step(done)
    return created
