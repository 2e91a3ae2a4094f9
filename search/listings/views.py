"""Web pages of the search app: parse input, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from flatsite.core import roles, storage
from flatsite.core.permissions import CREATE_LISTING_DENIED, OWN_LISTING_UPLOAD_ONLY, role_required
from flatsite.jobs.selectors import jobs_visible, page_of
from search.listings import ingest, selectors
from search.listings import services as listings
from search.listings import upload_batches as selectors_uploads
from search.listings.forms import ListingForm, UploadForm
from search.listings.uploads import UploadRejected
from search.matching.seen import seen_photos
from search.matching.selectors import listing_pairs


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Dashboard: own listings, recent jobs."""
    context = {
        "listings": selectors.listings_visible(request.user)[:20],
        "jobs": jobs_visible(request.user)[:10],
        "counts": selectors.photo_counts(),
    }
    return render(request, "search/home.html", context)


SORT_LABELS = {"newest": "Newest first", "oldest": "Oldest first", "title": "Title", "price": "Price"}


@login_required
def listing_list(request: HttpRequest) -> HttpResponse:
    """Listings the user may see: searched (?q=), sorted (?sort=), a page at a time (?page=)."""
    q = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "").strip() or "newest"
    sort_ok = sort in selectors.LISTING_SORTS
    if not sort_ok:
        known = ", ".join(selectors.LISTING_SORTS)
        messages.warning(request, f"Unknown sort “{sort[:40]}”: showing newest first. Known: {known}.")
        sort = "newest"
    page, note = page_of(selectors.listings_found(request.user, q, sort), request.GET.get("page"))
    if note:
        messages.info(request, note)
    context = {"listings": page.object_list, "page": page, "q": q, "sort": sort, "sorts": SORT_LABELS}
    return render(request, "search/listing_list.html", context, status=200 if sort_ok else 400)


@role_required(roles.UPLOAD, CREATE_LISTING_DENIED)
@require_http_methods(["GET", "POST"])
def listing_create(request: HttpRequest) -> HttpResponse:
    """Create a listing (realtors and admins)."""
    form = ListingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            listing = listings.listing_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Listing “{listing.title}” created. Now add its photos.")
            return redirect("listings:detail", listing_id=listing.pk)
    return render(request, "search/listing_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def listing_detail(request: HttpRequest, listing_id: int) -> HttpResponse:
    """A listing's photos and its upload form."""
    listing = selectors.listing_viewable(request.user, listing_id)
    if listing is None:
        raise Http404("No such listing, or it is not yours.")
    editable = selectors.listing_editable(request.user, listing_id) is not None
    pairs = listing_pairs(listing_id=listing.pk)
    # Where each paired listing may link for this user: its full page, its matched photos, or nowhere.
    paired = {p.a.pk for p in pairs} | {p.b.pk for p in pairs}
    links = selectors.listing_links(request.user, paired, seen_photos(request.session))
    context: dict[str, Any] = {
        "listing": listing,
        "photos": selectors.listing_photos(listing),
        "editable": editable,
        "form": UploadForm(),
        "duplicate_pairs": pairs,
        "full_listings": links.full,
        "matched_listings": links.matched,
        "uploads": selectors_uploads.listing_uploads(listing)[:10],
    }
    return render(request, "search/listing_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def listing_upload(request: HttpRequest, listing_id: int) -> HttpResponse:
    """Upload photos or a zip to a listing, then send the browser to the batch's result page."""
    if request.method == "GET":  # a reopened or bookmarked upload URL: the form is on the listing page
        return redirect("listings:detail", listing_id=listing_id)
    listing = selectors.listing_editable(request.user, listing_id)
    if listing is None:
        raise PermissionDenied(OWN_LISTING_UPLOAD_ONLY)
    files = request.FILES.getlist("files")
    context: dict[str, Any] = {"listing": listing, "photos": selectors.listing_photos(listing)}
    context.update({"editable": True, "form": UploadForm()})
    if not files:
        context["upload_error"] = "Choose at least one photo or zip file to upload."
        return render(request, "search/listing_detail.html", context, status=400)
    try:
        result = ingest.photo_ingest(
            listing=listing, uploader=request.user, items=[(f.name or "upload", f) for f in files]
        )
    except UploadRejected as exc:  # nothing was stored: showing the form again is safe to resubmit
        context["upload_error"] = f"Upload refused: {exc}"
        return render(request, "search/listing_detail.html", context, status=400)
    assert result.batch is not None  # photo_ingest always records its batch
    # 303 See Other: the browser GETs the result, so reloading it never posts the files again.
    url = reverse("listings:upload-result", args=[listing.pk, result.batch.pk])
    return HttpResponseRedirect(url, status=303)


@login_required
def upload_result(request: HttpRequest, listing_id: int, batch_id: int) -> HttpResponse:
    """One upload's per-file outcomes, its live job and when its photos become searchable; safe to reload."""
    upload = selectors_uploads.upload_batch_viewable(request.user, listing_id, batch_id)
    if upload is None:
        raise Http404("No such upload, or its listing is not yours.")
    context = {
        "upload": upload,
        "listing": upload.batch.listing,
        "outcomes": upload.batch.outcomes,
        "searchable_texts": selectors_uploads.SEARCHABLE_TEXTS,
        "queue_unavailable": ingest.QUEUE_UNAVAILABLE if upload.queue_unavailable else "",
    }
    return render(request, "search/upload_result.html", context)


@login_required
def photo_file(request: HttpRequest, photo_id: int, variant: str) -> HttpResponseBase:
    """Serve a photo's normalised image or thumbnail (never the private original)."""
    photo = selectors.photo_viewable(request.user, photo_id, seen_photos(request.session))
    if photo is None or variant not in ("image", "thumb"):
        raise Http404("No such photo.")
    relative = photo.thumb_path if variant == "thumb" else photo.image_path
    if not relative:
        raise Http404("This photo has no image yet.")
    try:
        handle = open(storage.media_path(relative), "rb")  # noqa: SIM115 - FileResponse closes it
    except FileNotFoundError as exc:
        raise Http404("Image file missing.") from exc
    response = FileResponse(handle, content_type="image/jpeg")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
