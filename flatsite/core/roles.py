"""The three roles and the permissions that stand for them."""

from __future__ import annotations

from typing import Any

REALTOR = "realtor"
MODERATOR = "moderator"
ADMIN = "admin"
ROLES = (REALTOR, MODERATOR, ADMIN)

# Permission codenames (app "search") that each role's group receives.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    REALTOR: ("add_listing", "change_listing", "view_listing", "add_photo", "view_photo", "search_photos"),
    MODERATOR: ("view_listing", "view_photo", "search_photos", "review_clusters"),
    ADMIN: (
        "add_listing",
        "change_listing",
        "view_listing",
        "view_any_listing",
        "add_photo",
        "view_photo",
        "search_photos",
        "review_clusters",
        "manage_jobs",
    ),
}

UPLOAD = "search.add_photo"
SEARCH = "search.search_photos"
REVIEW = "search.review_clusters"
MANAGE_JOBS = "search.manage_jobs"
VIEW_ANY_LISTING = "search.view_any_listing"


def can(user: Any, perm: str) -> bool:
    """Whether an authenticated, active user holds a permission."""
    return bool(user.is_authenticated and user.is_active and user.has_perm(perm))


def role_names(user: Any) -> list[str]:
    """The roles a user has, for display."""
    if not user.is_authenticated:
        return []
    if getattr(user, "is_superuser", False):
        return list(ROLES)
    names = set(user.groups.values_list("name", flat=True))
    return [r for r in ROLES if r in names]
