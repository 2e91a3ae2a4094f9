"""Listings: create (or find for an import), always owned by one agent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from search.models import Listing

LISTING_FIELDS = ("external_id", "title", "address", "zipcode", "bedrooms", "bathrooms", "area", "price")


def listing_create(*, owner: Any, title: str, **fields: Any) -> Listing:
    """Create a listing owned by owner; raises ValidationError with a clear message."""
    unknown = set(fields) - set(LISTING_FIELDS)
    if unknown:
        raise ValidationError(f"unknown listing fields: {', '.join(sorted(unknown))}")
    listing = Listing(owner=owner, title=(title or "").strip(), **fields)
    if listing.bathrooms is not None:
        listing.bathrooms = Decimal(str(listing.bathrooms))
    listing.full_clean()
    try:
        with transaction.atomic():
            listing.save()
    except IntegrityError as exc:
        raise ValidationError("a listing with this external id already exists for this agent") from exc
    return listing


def listing_get_or_create(*, owner: Any, external_id: str, title: str, **fields: Any) -> tuple[Listing, bool]:
    """Find the owner's listing by external id, or create it (bulk import)."""
    existing = Listing.objects.filter(owner=owner, external_id=external_id).first()
    if existing is not None:
        return existing, False
    return listing_create(owner=owner, external_id=external_id, title=title, **fields), True
