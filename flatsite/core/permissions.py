"""One permission rule for pages and the API: a role's permission, and the sentence shown without it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from rest_framework.permissions import BasePermission

from flatsite.core import roles

V = TypeVar("V", bound=Callable[..., HttpResponseBase])

# Sentences shared by a page and the API endpoint that do the same thing.
SEARCH_DENIED = "Your role cannot search photos."
CREATE_LISTING_DENIED = "Only realtors can create listings."
OWN_LISTING_UPLOAD_ONLY = "You can only upload photos to your own listings."


def role_required(perm: str, message: str) -> Callable[[V], V]:
    """Log-in required; then PermissionDenied(message), the styled 403 page, unless the user holds perm."""

    def decorate(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not roles.can(request.user, perm):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return cast(V, login_required(wrapped))

    return decorate


def role_permission(perm: str, message: str, methods: Collection[str] | None = None) -> type[BasePermission]:
    """A DRF permission class for the same rule (only on the given HTTP methods; None: all of them)."""

    refusal = message  # a class body cannot read an enclosing name that it assigns itself

    class RolePermission(BasePermission):
        # DRF answers a refused request with this sentence (401 instead when no one is logged in).
        message = refusal

        def has_permission(self, request: Any, view: Any) -> bool:
            if methods is not None and request.method not in methods:
                return True
            return roles.can(request.user, perm)

    RolePermission.__name__ = f"RolePermission[{perm}]"
    return RolePermission


def post_only(redirect_to: str) -> Callable[[V], V]:
    """A GET on a POST-only action URL (reopened, bookmarked) redirects to its page instead of a blank 405.

    redirect_to is a URL name; the view's URL arguments are passed on to it (e.g. cluster_id).
    """

    def decorate(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method == "GET":
                return HttpResponseRedirect(reverse(redirect_to, args=args, kwargs=kwargs))
            if request.method != "POST":
                return HttpResponseNotAllowed(["GET", "POST"])
            return view(request, *args, **kwargs)

        return cast(V, wrapped)

    return decorate
