"""JSON API: token auth, listing creation, uploads with per-file outcomes, clear errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import images
from tests.flatsite.jobs.sending import task_send_replace

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

    from search.models import Job, Photo

    def down(job_id: int) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    task_send_replace(monkeypatch, Job.Kind.INGEST, down)
    files = [SimpleUploadedFile("a.jpg", images.jpeg(1), content_type="image/jpeg")]
    response = api.post(f"/api/listings/{listing.pk}/photos/", {"files": files}, format="multipart")
    assert response.status_code == 503
    body = response.json()
    assert "queue is unavailable" in body["error"] and "photos are saved" in body["error"]
    assert body["detail"]["outcomes"][0]["status"] == "accepted"
    assert Photo.objects.get().status == Photo.Status.RECEIVED
    assert Job.objects.get(pk=body["detail"]["job"]).status == Job.Status.QUEUED


def _query() -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", images.jpeg(1), content_type="image/jpeg")


@pytest.mark.parametrize("k", ["0", "100000", "-3"])
def test_search_k_out_of_range_is_a_400_in_plain_words(api: APIClient, k: str) -> None:
    response = api.post("/api/search/", {"photo": _query(), "k": k}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "error": "k: must be between 1 and 100",
        "detail": {"k": ["must be between 1 and 100"]},
    }


def test_validation_errors_name_the_field_without_python_reprs(api: APIClient) -> None:
    response = api.post("/api/listings/", {"zipcode": "1011"}, format="json")
    body = response.json()
    assert body["error"] == "title: This field is required."
    assert body["detail"] == {"title": ["This field is required."]}
    assert "ErrorDetail" not in response.content.decode()


def test_search_without_a_photo_says_which_field_to_send(api: APIClient) -> None:
    response = api.post("/api/search/", {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"] == "photo: send the query image in the 'photo' field"


@pytest.mark.parametrize("credentials", [None, "Token not-a-real-token"])
def test_missing_or_invalid_credentials_are_a_401_with_www_authenticate(credentials: str | None) -> None:
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    response = client.get("/api/listings/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert isinstance(response.json()["error"], str)


def test_a_role_without_the_permission_gets_403_with_the_shared_sentence(moderator: Any) -> None:
    client = APIClient()
    client.force_authenticate(moderator)
    response = client.post("/api/listings/", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "Only realtors can create listings."


@pytest.fixture
def found(monkeypatch: pytest.MonkeyPatch, other_realtor: Any) -> Any:
    """The search finds one photo of another agent's listing (the engine itself is tested elsewhere)."""
    from search.matching import engine
    from tests.factories import ListingFactory
    from tests.search.clusters.fixtures import blob_photos

    photo = blob_photos(ListingFactory(owner=other_realtor, title="Canal house"), (1,), thumbs=True)[0][0]

    def image_search(query: Any, k: int, room_tag: str = "") -> Any:
        return engine.SearchResult(
            query="q", matches=[engine.MatchRow(photo, "edited", 0.9, {"inliers": 40})], took_ms=1.0
        )

    monkeypatch.setattr(engine, "image_search", image_search)
    return photo


def test_search_matches_carry_thumbnail_image_urls_and_the_listing_title(api: APIClient, found: Any) -> None:
    response = api.post("/api/search/", {"photo": _query()}, format="multipart")
    assert response.status_code == 200
    (match,) = response.json()["matches"]
    assert match["thumb_url"] == reverse("listings:photo-file", args=[found.pk, "thumb"])
    assert match["image_url"] == reverse("listings:photo-file", args=[found.pk, "image"])
    assert match["listing_title"] == "Canal house"
    assert (match["level"], match["evidence"], match["listing_url"]) == ("edited", {"inliers": 40}, None)


def test_a_browser_session_can_open_the_thumbnails_its_api_search_showed(realtor: Any, found: Any) -> None:
    client = APIClient()
    client.force_login(realtor)
    thumb = reverse("listings:photo-file", args=[found.pk, "thumb"])
    assert client.get(thumb).status_code == 404
    match = client.post("/api/search/", {"photo": _query()}, format="multipart").json()["matches"][0]
    assert match["thumb_url"] == thumb and client.get(thumb).status_code == 200


def test_job_response_keeps_every_snapshot_field(api: APIClient, realtor: Any) -> None:
    from search.models import Job

    job = Job.objects.create(kind=Job.Kind.INGEST, created_by=realtor)
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert body["created_by"] == realtor.pk and body["created_at"] and body["started_at"] is None
    assert body["items"] == [] and body["is_final"] is False


def test_schema_describes_the_search_and_job_responses_field_by_field(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    def ref(node: dict[str, Any]) -> dict[str, Any]:
        return components[node["$ref"].rsplit("/", 1)[1]]  # type: ignore[no-any-return]

    search = schema["paths"]["/api/search/"]["post"]
    response = ref(search["responses"]["200"]["content"]["application/json"]["schema"])
    match = ref(response["properties"]["matches"]["items"])
    assert {"level", "score", "thumb_url", "image_url", "listing_title", "listing_url"} <= set(
        match["properties"]
    )
    k = ref(search["requestBody"]["content"]["multipart/form-data"]["schema"])["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 100)
    job = schema["paths"]["/api/jobs/{job_id}/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert {"percent", "items", "created_at", "is_final"} <= set(ref(job["schema"])["properties"])


def test_the_docs_page_serves_swagger_ui_from_local_static_files() -> None:
    from django.contrib.staticfiles import finders

    response = APIClient().get(reverse("api:docs"))
    body = response.content.decode()
    assert response.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', body)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert all(s.startswith("/") for s in sources), sources
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert reverse("api:schema") in body
