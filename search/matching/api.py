"""JSON API (session or token auth), documented by the OpenAPI schema at /api/schema/."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from flatsite.core import roles
from flatsite.jobs import events
from search.listings import ingest, selectors
from search.listings import services as listings
from search.listings.uploads import UploadRejected
from search.matching.admission import Busy, search_gate
from search.matching.seen import seen_photos
from search.models import Listing


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error is {"error": "<one clear sentence>", "detail": ...}."""
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "; ".join(exc.messages), "detail": exc.messages}, status=400)
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data
        text = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else detail
        response.data = {"error": str(text) if not isinstance(text, str) else text, "detail": detail}
    return response


class ListingSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    photo_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Listing
        fields = [
            "id",
            "external_id",
            "title",
            "address",
            "zipcode",
            "bedrooms",
            "bathrooms",
            "area",
            "price",
            "owner",
            "created_at",
            "photo_count",
        ]
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
    @extend_schema(responses=ListingSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Listings the caller may see."""
        data = ListingSerializer(selectors.listings_visible(request.user)[:500], many=True).data
        return Response(data)

    @extend_schema(request=ListingSerializer, responses={201: ListingSerializer})
    def post(self, request: Request) -> Response:
        """Create a listing owned by the caller."""
        if not roles.can(request.user, roles.UPLOAD):
            raise PermissionDenied("Only realtors can create listings.")
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
            raise PermissionDenied("You can only upload photos to your own listings.")
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
    is_final = serializers.BooleanField()
    items = JobItemSerializer(many=True)


class JobApi(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        """A job's snapshot (same shape as the websocket messages)."""
        job = selectors.job_viewable(request.user, job_id)
        if job is None:
            raise NotFound("No such job, or it is not yours.")
        data = events.job_snapshot(job)
        data["items"] = selectors.job_items(job)
        return Response(data)


class SearchApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"photo": {"type": "string", "format": "binary"}, "k": {"type": "integer"}},
            }
        },
        responses={200: {"type": "object"}},
    )
    def post(self, request: Request) -> Response:
        """Search the collection with an uploaded photo; matches carry level, score and evidence."""
        from search.matching.engine import image_search, query_from_upload
        from search.ml.images.normalise import ImageRejected

        if not roles.can(request.user, roles.SEARCH):
            raise PermissionDenied("Your role cannot search photos.")
        upload = request.FILES.get("photo")
        if upload is None:
            return Response({"error": "send the query image in the 'photo' field"}, status=400)
        data: Any = request.data
        try:
            k = int(data.get("k") or 10)
        except (TypeError, ValueError):
            return Response({"error": "k must be a whole number of matches, e.g. 10"}, status=400)
        try:
            entered = time.perf_counter()
            # Decoding the query takes CPU too: it waits for its slot with the rest of the search.
            with search_gate().slot():
                admitted = time.perf_counter()
                query = query_from_upload(upload)
                decoded = time.perf_counter()
                result = image_search(query, k=max(1, min(k, 100)), room_tag=str(data.get("room") or ""))
            result.timings["queue_ms"] = 1000 * (admitted - entered)
            result.timings["decode_ms"] = 1000 * (decoded - admitted)
        except Busy as busy:
            return busy_response(busy)
        except ImageRejected as exc:
            return Response({"error": f"cannot search with this file: {exc}"}, status=400)
        payload = result.as_json(upload.name or "query")
        _add_listing_urls(request, payload["matches"])
        return Response(payload)


def _add_listing_urls(request: Request, matches: list[dict[str, Any]]) -> None:
    """Each match's listing page the caller may open: the full listing, its matched photos, or null."""
    listing_ids = {m["listing_id"] for m in matches}
    links = selectors.listing_links(request.user, listing_ids, seen_photos(request.session))
    for match in matches:
        listing_id = match["listing_id"]
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
