"""Search pages: upload-and-search, search from a stored photo, duplicate listings report, matched listing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from flatsite.core import roles
from flatsite.core.permissions import SEARCH_DENIED, role_required
from search.clusters.selectors import room_tags
from search.listings import selectors
from search.matching.admission import Busy, search_gate
from search.matching.engine import (
    LEVEL_LABELS,
    LEVEL_ORDER,
    SearchResult,
    image_search,
    query_from_photo,
    query_from_upload,
)
from search.matching.seen import seen_add, seen_photos
from search.matching.selectors import listing_pairs
from search.ml.images.normalise import ImageRejected
from search.models import Photo


def _parse_k(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.POST.get("k") or request.GET.get("k") or 10), 100))
    except ValueError:
        return 10


@role_required(roles.SEARCH, SEARCH_DENIED)
@require_http_methods(["GET", "POST"])
def search_upload(request: HttpRequest) -> HttpResponse:
    """Drop a photo, see its matches by level and by listing."""
    context: dict[str, Any] = {"room_tags": room_tags()}
    if request.method == "POST":
        upload = request.FILES.get("photo")
        if upload is None:
            context["error"] = "Choose a photo to search with."
            return render(request, "search/search.html", context, status=400)
        try:
            with search_gate().slot():
                query = query_from_upload(upload)
                context["result"] = image_search(
                    query, k=_parse_k(request), room_tag=request.POST.get("room", "")
                )
        except Busy as busy:
            return _busy_page(request, context, busy)
        except ImageRejected as exc:
            context["error"] = f"Cannot search with this file: {exc}"
            return render(request, "search/search.html", context, status=400)
        context["room"] = request.POST.get("room", "")
        context.update(_shown(request, context["result"]))
    return render(request, "search/search.html", context)


def _parse_filters(request: HttpRequest) -> dict[str, Any]:
    # Shareable GET filters of a stored-photo search: ?level=edited&level=exact&agent=bert&room=kitchen
    levels = {lv.value for lv in LEVEL_ORDER} & set(request.GET.getlist("level"))
    agent = request.GET.get("agent", "").strip()
    return {"levels": levels, "agent": agent, "room": request.GET.get("room", "")}


def _busy_page(request: HttpRequest, context: dict[str, Any], busy: Busy) -> HttpResponse:
    context["error"] = f"The search is busy right now; please try again in {busy.retry_after_s} s."
    response = render(request, "search/search.html", context, status=503)
    response["Retry-After"] = str(busy.retry_after_s)
    return response


@role_required(roles.SEARCH, SEARCH_DENIED)
def search_photo(request: HttpRequest, photo_id: int) -> HttpResponse:
    """Matches of a photo already in the collection."""
    photo = selectors.photo_viewable(request.user, photo_id, seen_photos(request.session))
    if photo is None or not photo.stored.image_path:
        raise Http404("No such photo, or it is not processed yet, or not yours to see.")
    filters = _parse_filters(request)
    try:
        with search_gate().slot():
            found = image_search(query_from_photo(photo), k=_parse_k(request), room_tag=filters["room"])
    except Busy as busy:
        return _busy_page(request, {"query_photo": photo}, busy)
    result = found.only(filters["levels"], filters["agent"])
    context = {
        "result": result,
        "query_photo": photo,
        "filters": filters,
        "level_choices": [(lv.value, LEVEL_LABELS[lv]) for lv in LEVEL_ORDER],
        "room": filters["room"],
        "room_tags": room_tags(),
        "k": _parse_k(request),
        **_shown(request, result, photo),
    }
    return render(request, "search/search.html", context)


def _shown(request: HttpRequest, result: SearchResult, query: Photo | None = None) -> dict[str, Any]:
    """Remember the photos a search showed (so they open), and where each listing may link."""
    photos = [row.photo for row in result.matches] + ([query] if query is not None else [])
    seen_add(request.session, [p.pk for p in photos])
    return _listing_links(request, (p.listing_id for p in photos))


def _listing_links(request: HttpRequest, listing_ids: Iterable[int]) -> dict[str, Any]:
    # Templates link a listing to its full page, its matched-photos page, or not at all (_listing_link).
    links = selectors.listing_links(request.user, listing_ids, seen_photos(request.session))
    return {"full_listings": links.full, "matched_listings": links.matched}


@role_required(roles.SEARCH, SEARCH_DENIED)
def duplicate_listings(request: HttpRequest) -> HttpResponse:
    """Report of listing pairs that probably show the same property."""
    pairs = listing_pairs()
    links = _listing_links(request, (listing.pk for pair in pairs for listing in (pair.a, pair.b)))
    return render(request, "search/duplicates.html", {"pairs": pairs, **links})


@role_required(roles.SEARCH, SEARCH_DENIED)
def listing_matched(request: HttpRequest, listing_id: int) -> HttpResponse:
    """Another agent's listing as a realtor may see it: title, agent and only the photos that matched."""
    if selectors.listing_viewable(request.user, listing_id) is not None:
        return redirect("listings:detail", listing_id=listing_id)  # theirs, or they see every listing
    matched = selectors.listing_matched(request.user, listing_id, seen_photos(request.session))
    if matched is None:
        raise Http404("No such listing, or none of its photos matches yours or was in your searches.")
    return render(request, "search/listing_matched.html", {"matched": matched})
