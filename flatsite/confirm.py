"""One confirmation step for destructive POSTs: what will happen, then a second click to do it."""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

CONFIRM_FIELD = "confirmed"
#: Thumbnails shown at most; the consequences give the full counts.
MAX_IMAGES = 60
# Re-posted as hidden fields on the confirmation page; the CSRF token is rendered fresh by the template.
_NOT_REPOSTED = {"csrfmiddlewaretoken", CONFIRM_FIELD}


def confirmed(request: HttpRequest) -> bool:
    """Whether this POST carries the second click of a confirmation page."""
    return request.POST.get(CONFIRM_FIELD) == "yes"


def confirmation_page(
    request: HttpRequest,
    *,
    title: str,
    consequences: list[str],
    button: str,
    cancel_url: str,
    images: Sequence[str] = (),
) -> HttpResponse:
    """The page that asks before a destructive POST is carried out; nothing has been changed yet.

    images: URLs of thumbnails of what the action touches (the first MAX_IMAGES are shown).
    """
    fields = [
        (key, value)
        for key in request.POST
        for value in request.POST.getlist(key)
        if key not in _NOT_REPOSTED
    ]
    back = request.POST.get("next") or request.headers.get("Referer") or cancel_url
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = cancel_url
    context = {
        "title": title,
        "consequences": consequences,
        "button": button,
        "action": request.get_full_path(),
        "fields": fields,
        "cancel_url": back,
        "images": list(images[:MAX_IMAGES]),
        "more_images": max(0, len(images) - MAX_IMAGES),
    }
    return render(request, "confirm.html", context, status=200)
