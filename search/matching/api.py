"""JSON API (session or token auth), documented by the OpenAPI schema at /api/schema/."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from flatsite.core import roles
from flatsite.core.permissions import (
    CREATE_LISTING_DENIED,
    OWN_LISTING_UPLOAD_ONLY,
    SEARCH_DENIED,
    role_permission,
)
from flatsite.jobs import events
from flatsite.jobs import selectors as jobs_selectors
from search.listings import ingest, selectors
from search.listings import services as listings
from search.listings.uploads import UploadRejected
from search.matching.admission import Busy, search_gate
from search.matching.seen import seen_add, seen_photos
from search.ml.match.levels import Level
from search.models import Listing

# The most matches one search returns: the search page's limit too (its k field, views._parse_k).
K_MAX = 100
K_RANGE = f"must be between 1 and {K_MAX}"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error is {"error": "<plain sentences>", "detail": ...}, with no Python reprs in either."""
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "; ".join(exc.messages), "detail": exc.messages}, status=400)
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = _plain(response.data)
        response.data = {"error": "; ".join(_sentences(detail)), "detail": detail}
    return response


def _plain(detail: Any) -> Any:
    """DRF's error detail with its ErrorDetail strings turned into plain ones."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(item) for item in detail]
    return str(detail)


def _sentences(detail: Any, field: str = "") -> list[str]:
    """'field: message' for each error (nested fields dotted); errors of no one field stand alone."""
    if isinstance(detail, dict):
        found: list[str] = []
        for key, value in detail.items():
            name = "" if key in ("detail", "non_field_errors") else f"{field}.{key}" if field else key
            found += _sentences(value, name)
        return found
    if isinstance(detail, list):
        return [sentence for item in detail for sentence in _sentences(item, field)]
    return [f"{field}: {detail}" if field else str(detail)]


class ListingSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    photo_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Listing
        # The writable fields are exactly those listing_create takes, in the same order.
        fields = ["id", *listings.LISTING_FIELDS, "owner", "created_at", "photo_count"]
        read_only_fields = ["id", "owner", "created_at", "photo_count"]


class OutcomeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    detail = serializers.CharField()
    photo_id = serializers.IntegerField(allow_null=True)
    duplicate_of = serializers.IntegerField(allow_null=True)


class UploadResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    job = serializers.IntegerField(allow_null=True)
    outcomes = OutcomeSerializer(many=True)


class UploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    files = serializers.ListField(child=serializers.FileField(), help_text="photos or zip files")


class ListingListApi(APIView):
    permission_classes = [
        IsAuthenticated,
        role_permission(roles.UPLOAD, CREATE_LISTING_DENIED, methods={"POST"}),
    ]

    @extend_schema(responses=ListingSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Listings the caller may see."""
        data = ListingSerializer(selectors.listings_visible(request.user)[:500], many=True).data
        return Response(data)

    @extend_schema(request=ListingSerializer, responses={201: ListingSerializer})
    def post(self, request: Request) -> Response:
        """Create a listing owned by the caller."""
        ser = ListingSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        listing = listings.listing_create(owner=request.user, **ser.validated_data)
        return Response(ListingSerializer(selectors.listing_viewable(request.user, listing.pk)).data, 201)


class ListingDetailApi(APIView):
    @extend_schema(responses=ListingSerializer)
    def get(self, request: Request, listing_id: int) -> Response:
        """One listing."""
        listing = selectors.listing_viewable(request.user, listing_id)
        if listing is None:
            raise NotFound("No such listing, or it is not yours.")
        return Response(ListingSerializer(listing).data)


class ListingPhotosApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={201: UploadResultSerializer})
    def post(self, request: Request, listing_id: int) -> Response:
        """Upload photos or zips to the caller's listing; returns per-file outcomes and the job id."""
        listing = selectors.listing_editable(request.user, listing_id)
        if listing is None:
            raise PermissionDenied(OWN_LISTING_UPLOAD_ONLY)
        files = request.FILES.getlist("files")
        if not files:
            return Response({"error": "send at least one file in the 'files' field"}, status=400)
        try:
            result = ingest.photo_ingest(
                listing=listing, uploader=request.user, items=[(f.name or "upload", f) for f in files]
            )
        except UploadRejected as exc:
            return Response({"error": f"upload refused: {exc}"}, status=400)
        payload = {
            "job": result.job.pk if result.job else None,
            "outcomes": [o.as_dict() for o in result.outcomes],
        }
        if result.queue_unavailable:  # the photos are stored; the reconciler queues the job later
            return Response({"error": ingest.QUEUE_UNAVAILABLE, "detail": payload}, status=503)
        return Response(payload, status=201)


class JobItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField()
    duplicate_of = serializers.IntegerField(allow_null=True)


class JobSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField()
    message = serializers.CharField()
    error = serializers.CharField()
    result = serializers.JSONField()
    created_by = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    is_final = serializers.BooleanField()
    items = JobItemSerializer(many=True)


class JobApi(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        """A job's snapshot (same shape as the websocket messages)."""
        job = jobs_selectors.job_viewable(request.user, job_id)
        if job is None:
            raise NotFound("No such job, or it is not yours.")
        data = events.job_snapshot(job)
        data["items"] = selectors.job_items(job)
        return Response(JobSerializer(data).data)


class SearchRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    photo = serializers.FileField(
        help_text="the query image",
        error_messages={"required": "send the query image in the 'photo' field"},
    )
    k = serializers.IntegerField(
        default=10,
        min_value=1,
        max_value=K_MAX,
        help_text=f"how many similar photos at most (1 to {K_MAX})",
        error_messages={
            "invalid": "must be a whole number of matches, e.g. 10",
            "min_value": K_RANGE,
            "max_value": K_RANGE,
        },
    )
    room = serializers.CharField(default="", allow_blank=True, help_text="only photos with this room tag")


class MatchSerializer(serializers.Serializer):  # type: ignore[type-arg]
    photo_id = serializers.IntegerField()
    listing_id = serializers.IntegerField()
    listing_title = serializers.CharField()
    listing_url = serializers.CharField(
        allow_null=True, help_text="the listing page the caller may open (full or matched photos), or null"
    )
    original_name = serializers.CharField()
    level = serializers.ChoiceField(choices=[level.value for level in Level])
    score = serializers.FloatField()
    evidence = serializers.DictField(help_text="what decided the level (hashes, local-feature inliers)")
    thumb_url = serializers.CharField()
    image_url = serializers.CharField()


class SearchResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    query = serializers.CharField(help_text="the uploaded file's name")
    took_ms = serializers.FloatField()
    timings = serializers.DictField(child=serializers.FloatField(), help_text="milliseconds per stage")
    matches = MatchSerializer(many=True)


class SearchApi(APIView):
    parser_classes = [MultiPartParser]
    permission_classes = [IsAuthenticated, role_permission(roles.SEARCH, SEARCH_DENIED)]

    @extend_schema(
        request={"multipart/form-data": SearchRequestSerializer}, responses={200: SearchResponseSerializer}
    )
    def post(self, request: Request) -> Response:
        """Search the collection with an uploaded photo; matches carry level, score and evidence."""
        from search.matching.engine import image_search, query_from_upload
        from search.ml.images.normalise import ImageRejected

        asked = SearchRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        upload, k, room = (asked.validated_data[name] for name in ("photo", "k", "room"))
        try:
            entered = time.perf_counter()
            # Decoding the query takes CPU too: it waits for its slot with the rest of the search.
            with search_gate().slot():
                admitted = time.perf_counter()
                query = query_from_upload(upload)
                decoded = time.perf_counter()
                result = image_search(query, k=k, room_tag=room)
            result.timings["queue_ms"] = 1000 * (admitted - entered)
            result.timings["decode_ms"] = 1000 * (decoded - admitted)
        except Busy as busy:
            return busy_response(busy)
        except ImageRejected as exc:
            return Response({"error": f"cannot search with this file: {exc}"}, status=400)
        payload = result.as_json(upload.name or "query")
        titles = {row.photo.pk: row.photo.listing.title for row in result.matches}
        if isinstance(request.successful_authenticator, SessionAuthentication):
            # Like the search page: the photos shown open to this browser session (thumb_url, image_url).
            # A token caller has no lasting session, and writing one would store a row per request.
            seen_add(request.session, list(titles))
        _add_links(request, payload["matches"], titles)
        return Response(SearchResponseSerializer(payload).data)


def _add_links(request: Request, matches: list[dict[str, Any]], titles: dict[int, str]) -> None:
    """Each match's listing title, its image URLs, and the listing page the caller may open (or null)."""
    listing_ids = {m["listing_id"] for m in matches}
    links = selectors.listing_links(request.user, listing_ids, seen_photos(request.session))
    for match in matches:
        listing_id, photo_id = match["listing_id"], match["photo_id"]
        match["listing_title"] = titles[photo_id]
        match["thumb_url"] = reverse("listings:photo-file", args=[photo_id, "thumb"])
        match["image_url"] = reverse("listings:photo-file", args=[photo_id, "image"])
        if listing_id in links.full:
            match["listing_url"] = reverse("listings:detail", args=[listing_id])
        elif listing_id in links.matched:
            match["listing_url"] = reverse("matching:listing-matched", args=[listing_id])
        else:
            match["listing_url"] = None


def busy_response(busy: Busy) -> Response:
    """503 with Retry-After: every search slot is taken and the queue is full."""
    headers = {"Retry-After": str(busy.retry_after_s)}
    return Response({"error": str(busy), "retry_after_s": busy.retry_after_s}, status=503, headers=headers)
