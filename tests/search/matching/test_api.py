"""JSON API: token auth, listing creation, uploads with per-file outcomes, clear errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import images

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(realtor: Any) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=realtor)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_token_auth_creates_a_listing_owned_by_the_caller(api: APIClient, realtor: Any) -> None:
    response = api.post("/api/listings/", {"title": "Sunny flat", "zipcode": "1011"}, format="json")
    assert response.status_code == 201
    assert response.json()["owner"] == realtor.pk


def test_listing_without_title_gets_a_clear_error(api: APIClient) -> None:
    response = api.post("/api/listings/", {"zipcode": "1011"}, format="json")
    assert response.status_code == 400
    assert "error" in response.json() and "title" in str(response.json()["detail"])


def test_upload_returns_per_file_outcomes_and_a_job(api: APIClient, listing: Any) -> None:
    files = [
        SimpleUploadedFile("a.jpg", images.jpeg(1), content_type="image/jpeg"),
        SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain"),
    ]
    response = api.post(f"/api/listings/{listing.pk}/photos/", {"files": files}, format="multipart")
    assert response.status_code == 201
    body = response.json()
    outcomes = {o["name"]: o for o in body["outcomes"]}
    assert outcomes["a.jpg"]["status"] == "accepted"
    assert outcomes["notes.txt"]["status"] == "rejected"
    assert "unsupported file type" in outcomes["notes.txt"]["detail"]
    job = api.get(f"/api/jobs/{body['job']}/").json()
    assert job["total"] == 1 and job["items"][0]["name"] == "a.jpg"


def test_upload_without_files_is_a_400_with_a_message(api: APIClient, listing: Any) -> None:
    response = api.post(f"/api/listings/{listing.pk}/photos/", {}, format="multipart")
    assert response.status_code == 400
    assert "at least one file" in response.json()["error"]


def test_openapi_schema_documents_the_upload_endpoint(api: APIClient) -> None:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/listings/{listing_id}/photos/" in response.json()["paths"]


@pytest.mark.django_db(transaction=True)
def test_upload_while_the_queue_is_down_is_a_503_saying_the_photos_are_saved(
    api: APIClient, listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError

    from flatsite.jobs import services as jobs
    from search.models import Job, Photo

    def down(job_id: int) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setitem(jobs.ENQUEUERS, Job.Kind.INGEST, down)
    files = [SimpleUploadedFile("a.jpg", images.jpeg(1), content_type="image/jpeg")]
    response = api.post(f"/api/listings/{listing.pk}/photos/", {"files": files}, format="multipart")
    assert response.status_code == 503
    body = response.json()
    assert "queue is unavailable" in body["error"] and "photos are saved" in body["error"]
    assert body["detail"]["outcomes"][0]["status"] == "accepted"
    assert Photo.objects.get().status == Photo.Status.RECEIVED
    assert Job.objects.get(pk=body["detail"]["job"]).status == Job.Status.QUEUED
