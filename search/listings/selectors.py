"""Read-only queries of the search app."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, IntegerField, Q, QuerySet
from django.db.models.functions import Coalesce, Lower

from flatsite.core import roles
from search.models import Job, Listing, Photo, PhotoMatch

# Photos without stored pixels yet (or ever): nothing to show or to match.
_UNSTORED = (Photo.Status.RECEIVED, Photo.Status.REJECTED)


def sees_every_listing(user: Any) -> bool:
    """Whether the user may open every listing's full page (admins and moderators)."""
    return roles.can(user, roles.VIEW_ANY_LISTING) or roles.can(user, roles.REVIEW)


def listings_visible(user: Any) -> QuerySet[Listing]:
    """Listings a user may see in listing pages: their own, or all for admins and moderators."""
    qs = Listing.objects.annotate(photo_count=Count("photos")).select_related("owner")
    if sees_every_listing(user):
        return qs
    return qs.filter(owner=user)


# The orders the listing list offers (?sort=); the id last keeps pages stable between equal values.
LISTING_SORTS: dict[str, tuple[Any, ...]] = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "title": (Lower("title"), "id"),
    "price": (F("price").asc(nulls_last=True), "id"),
}


def listings_found(user: Any, q: str = "", sort: str = "newest") -> QuerySet[Listing]:
    """Listings a user may see whose title, address or external id contains q, in a LISTING_SORTS order."""
    qs = listings_visible(user)  # the role rule first: a search only narrows what the user may see
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(address__icontains=q) | Q(external_id__icontains=q))
    return qs.order_by(*LISTING_SORTS[sort])


def listing_editable(user: Any, listing_id: int) -> Listing | None:
    """The listing if the user may edit it and upload to it, else None."""
    if not roles.can(user, roles.UPLOAD):
        return None
    qs = Listing.objects.filter(pk=listing_id)
    if not roles.can(user, roles.VIEW_ANY_LISTING):
        qs = qs.filter(owner=user)
    return qs.first()


def listing_viewable(user: Any, listing_id: int) -> Listing | None:
    """The listing if the user may see its page."""
    return listings_visible(user).filter(pk=listing_id).first()


def listing_photos(listing: Listing) -> QuerySet[Photo]:
    """Photos of a listing, with originals for copies."""
    return listing.photos.select_related("duplicate_of", "duplicate_of__listing").order_by("id")


def photo_viewable(user: Any, photo_id: int, seen: Collection[int] = ()) -> Photo | None:
    """A photo whose derivatives the user may see (admins and moderators: any; see _others_photos_visible)."""
    if not user.is_authenticated:
        return None
    photo = Photo.objects.select_related("listing").filter(pk=photo_id).first()
    if photo is None or sees_every_listing(user) or photo.listing.owner_id == user.pk:
        return photo
    return photo if _others_photos_visible(user, seen).filter(pk=photo_id).exists() else None


def _matching_own(user: Any) -> Q:
    """Photos showing the same pixels as one of the user's photos, or confirmed to match one (PhotoMatch)."""
    # A copy shares its original's pixels and matches; PhotoMatch pairs only ever name originals.
    holder = Coalesce("duplicate_of_id", "id", output_field=IntegerField())  # the photo holding the pixels
    own = Photo.objects.filter(listing__owner=user).exclude(status__in=_UNSTORED)
    own_stored = own.annotate(holder=holder).values("holder")
    linked = Q()
    for ids in (
        own_stored,
        PhotoMatch.objects.filter(photo_a_id__in=own_stored).values("photo_b_id"),
        PhotoMatch.objects.filter(photo_b_id__in=own_stored).values("photo_a_id"),
    ):
        linked |= Q(pk__in=ids) | Q(duplicate_of_id__in=ids)
    return linked


def _others_photos_visible(user: Any, seen: Collection[int]) -> QuerySet[Photo]:
    """Photos of other agents' listings a realtor may see.

    Those their own searches showed them (seen, kept in their session) and those that are exact copies
    or confirmed matches of their own photos (what the duplicate-listings report is built from); nothing
    else, so no photo can be fetched by guessing its id.
    """
    if not roles.can(user, roles.SEARCH):
        return Photo.objects.none()
    return (
        Photo.objects.filter(Q(pk__in=list(seen)) | _matching_own(user))
        .exclude(listing__owner=user)
        .exclude(status__in=_UNSTORED)
    )


@dataclass(frozen=True)
class ListingLinks:
    """Listings (ids) a user may open in full, and those they may see only as their matched photos."""

    full: frozenset[int]
    matched: frozenset[int]


def listing_links(user: Any, listing_ids: Iterable[int], seen: Collection[int] = ()) -> ListingLinks:
    """Which listing page each of these listings may link to for this user."""
    ids = set(listing_ids)
    full = set(listings_visible(user).filter(pk__in=ids).values_list("pk", flat=True))
    others = _others_photos_visible(user, seen).filter(listing_id__in=ids - full)
    return ListingLinks(frozenset(full), frozenset(others.values_list("listing_id", flat=True)))


@dataclass
class MatchedListing:
    """What a realtor may see of another agent's listing: title, agent, the photos that matched theirs."""

    listing: Listing
    photos: list[Photo]


def listing_matched(user: Any, listing_id: int, seen: Collection[int] = ()) -> MatchedListing | None:
    """Another agent's listing as this user may see it, or None when none of its photos is theirs to see."""
    qs = _others_photos_visible(user, seen).filter(listing_id=listing_id).exclude(thumb_path="")
    photos = list(qs.select_related("listing__owner").order_by("id"))
    return MatchedListing(photos[0].listing, photos) if photos else None


def job_items(job: Job, limit: int = 500) -> list[dict[str, Any]]:
    """Per-photo state of a job (for its detail page)."""
    photos = job.photos.select_related("duplicate_of").order_by("id")[:limit]
    return [
        {
            "id": p.pk,
            "name": p.original_name,
            "status": p.status,
            "reason": p.reject_reason,
            "duplicate_of": p.duplicate_of_id,
        }
        for p in photos
    ]


def job_details(job: Job) -> dict[str, Any]:
    """What a job page shows beyond the platform's snapshot: the job's photos and their outcomes."""
    return {"items": job_items(job)}


def photo_counts(listing_ids: list[int] | None = None) -> dict[str, int]:
    """Photos by status (optionally for some listings)."""
    qs = Photo.objects.all()
    if listing_ids is not None:
        qs = qs.filter(listing_id__in=listing_ids)
    rows = qs.values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def features_matrix(encoder: str, photo_ids: list[int] | None = None) -> tuple[Any, Any]:
    """(ids (N,) int64, vectors (N, D) float32) of stored photos with features from one encoder."""
    import numpy as np

    from search.models import Feature

    qs = Feature.objects.filter(encoder=encoder, photo__duplicate_of__isnull=True).exclude(
        photo__status=Photo.Status.REJECTED
    )
    if photo_ids is not None:
        qs = qs.filter(photo_id__in=photo_ids)
    rows = list(qs.order_by("photo_id").values_list("photo_id", "data"))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows])
    return ids, vectors


def index_versions() -> list[Any]:
    """Every index version, newest first per encoder (admin operations page)."""
    from search.models import IndexVersion

    return list(IndexVersion.objects.select_related("job").order_by("encoder", "-version"))


def encoders_overview() -> list[dict[str, Any]]:
    """Registered encoders with availability and how many photos have their features."""
    from search.ml.encoders.registry import encoder_status, list_encoders
    from search.models import Feature

    counts = dict(Feature.objects.values_list("encoder").annotate(n=Count("id")).values_list("encoder", "n"))
    rows = []
    for name in list_encoders():
        ok, reason = encoder_status(name)
        rows.append({"name": name, "available": ok, "reason": reason, "features": counts.get(name, 0)})
    return rows
