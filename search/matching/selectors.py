"""Probable duplicate listings: listings that share several copied or same-room photos."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from search.matching.evidence import level_label
from search.models import Listing, Photo, PhotoMatch

LEVEL_RANK = {"exact": 0, "edited": 1, "same_room": 2}


@dataclass
class ListingPair:
    """Two listings and the evidence that they show the same property."""

    a: Listing
    b: Listing
    shared: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of matched photo pairs."""
        return len(self.shared)

    @property
    def best(self) -> str:
        """Strongest level among the shared photos."""
        levels: list[str] = [str(s["level"]) for s in self.shared]
        return min(levels, key=lambda lv: LEVEL_RANK.get(lv, 9))

    @property
    def best_label(self) -> str:
        """The strongest level in words."""
        return level_label(self.best)


def _groups() -> dict[int, set[tuple[int, int]]]:
    """stored photo id -> {(listing id, photo id)} for the photo and its copies."""
    groups: dict[int, set[tuple[int, int]]] = defaultdict(set)
    rows = Photo.objects.exclude(status__in=[Photo.Status.REJECTED, Photo.Status.RECEIVED]).values_list(
        "pk", "listing_id", "duplicate_of_id"
    )
    for pk, listing_id, original in rows:
        groups[original or pk].add((listing_id, pk))
    return groups


def _add(
    pairs: dict[tuple[int, int], list[dict[str, Any]]],
    x: tuple[int, int],
    y: tuple[int, int],
    info: dict[str, Any],
) -> None:
    if x[0] == y[0]:
        return
    (la, pa), (lb, pb) = sorted([x, y])
    pairs[(la, lb)].append({**info, "photo_a": pa, "photo_b": pb})


def listing_pairs(min_shared: int = 2, listing_id: int | None = None) -> list[ListingPair]:
    """Listing pairs sharing at least min_shared matched photos, most evidence first."""
    groups = _groups()
    pairs: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for members in groups.values():
        ordered = sorted(members)
        for i, x in enumerate(ordered):
            for y in ordered[i + 1 :]:
                _add(pairs, x, y, {"level": "exact", "score": 1.0})
    for a, b, level, score in PhotoMatch.objects.values_list("photo_a_id", "photo_b_id", "level", "score"):
        for x in groups.get(a, ()):
            for y in groups.get(b, ()):
                _add(pairs, x, y, {"level": level, "score": score})
    keep = {
        k: v for k, v in pairs.items() if len(v) >= min_shared and (listing_id is None or listing_id in k)
    }
    listings = Listing.objects.in_bulk({i for k in keep for i in k})
    found = [ListingPair(listings[a], listings[b], shared) for (a, b), shared in keep.items()]
    return sorted(found, key=lambda p: (-p.count, LEVEL_RANK.get(p.best, 9)))
