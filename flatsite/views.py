"""Top-level pages that belong to no app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


class LogoutPage(auth_views.LogoutView):
    """Log out on POST; a GET (a typed, bookmarked or reopened URL) asks with a "Log out" button.

    Logging out on GET would let any page log a visitor out with an image tag, which is why Django's
    view takes only POST; answering GET with a blank 405 left people stuck on an empty page.
    """

    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The confirmation page, or the login page for someone already logged out."""
        if not request.user.is_authenticated:
            return redirect(settings.LOGIN_URL)
        return render(request, "registration/logout_confirm.html")
