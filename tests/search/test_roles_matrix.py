"""Every role against every page and API endpoint, anonymous included."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from search.models import Job
from tests.factories import ListingFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "realtor", "other_realtor", "moderator", "admin")


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    owner = UserFactory(role="realtor")
    users = {
        "realtor": owner,
        "other_realtor": UserFactory(role="realtor"),
        "moderator": UserFactory(role="moderator"),
        "admin": UserFactory(role="admin"),
    }
    listing = ListingFactory(owner=owner)
    job = Job.objects.create(kind=Job.Kind.INGEST, created_by=owner)
    return {"users": users, "listing": listing, "job": job}


def _client(world: dict[str, Any], role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(world["users"][role])
    return client


# (method, url template, {role: expected status}); "login" = redirect to the login page.
PAGE_MATRIX = [
    (
        "get",
        "/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 200, "moderator": 200, "admin": 200},
    ),
    (
        "get",
        "/listings/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 200, "moderator": 200, "admin": 200},
    ),
    (
        "get",
        "/listings/new/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 200, "moderator": 403, "admin": 200},
    ),
    (
        "get",
        "/listings/{listing}/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 404, "moderator": 200, "admin": 200},
    ),
    (
        "post",
        "/listings/{listing}/upload/",
        {"anonymous": "login", "realtor": 400, "other_realtor": 403, "moderator": 403, "admin": 400},
    ),
    (
        "get",
        "/jobs/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 200, "moderator": 200, "admin": 200},
    ),
    (
        "get",
        "/jobs/{job}/",
        {"anonymous": "login", "realtor": 200, "other_realtor": 404, "moderator": 404, "admin": 200},
    ),
    (
        "post",
        "/jobs/{job}/cancel/",
        {"anonymous": "login", "realtor": 302, "other_realtor": 404, "moderator": 404, "admin": 302},
    ),
    (
        "get",
        "/api/listings/",
        {"anonymous": 403, "realtor": 200, "other_realtor": 200, "moderator": 200, "admin": 200},
    ),
    (
        "post",
        "/api/listings/",
        {"anonymous": 403, "realtor": 400, "other_realtor": 400, "moderator": 403, "admin": 400},
    ),
    (
        "get",
        "/api/listings/{listing}/",
        {"anonymous": 403, "realtor": 200, "other_realtor": 404, "moderator": 200, "admin": 200},
    ),
    (
        "post",
        "/api/listings/{listing}/photos/",
        {"anonymous": 403, "realtor": 400, "other_realtor": 403, "moderator": 403, "admin": 400},
    ),
    (
        "get",
        "/api/jobs/{job}/",
        {"anonymous": 403, "realtor": 200, "other_realtor": 404, "moderator": 404, "admin": 200},
    ),
    (
        "get",
        "/api/schema/",
        {"anonymous": 200, "realtor": 200, "other_realtor": 200, "moderator": 200, "admin": 200},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "url", "expected"), PAGE_MATRIX, ids=[f"{m} {u}" for m, u, _ in PAGE_MATRIX]
)
def test_role_endpoint_matrix(
    world: dict[str, Any], role: str, method: str, url: str, expected: dict[str, Any]
) -> None:
    client = _client(world, role)
    target = url.format(listing=world["listing"].pk, job=world["job"].pk)
    response = getattr(client, method)(target)
    want = expected[role]
    if want == "login":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    else:
        assert response.status_code == want, (role, method, target, response.content[:300])
