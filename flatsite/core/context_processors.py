"""Template context: the current user's roles for the navigation."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from flatsite.core import roles


def role_flags(request: HttpRequest) -> dict[str, Any]:
    """Expose role flags to every template."""
    user = request.user
    return {
        "user_roles": roles.role_names(user),
        "can_upload": roles.can(user, roles.UPLOAD),
        "can_search": roles.can(user, roles.SEARCH),
        "can_review": roles.can(user, roles.REVIEW),
        "can_manage_jobs": roles.can(user, roles.MANAGE_JOBS),
    }
