"""One permission rule for pages and API: styled 403s with their sentence, and no blank 405 on actions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from flatsite.core import roles
from flatsite.core.permissions import post_only, role_permission, role_required
from tests.factories import ListingFactory, UserFactory
from tests.search.clusters.fixtures import blob_photos, fake_run

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _assert_styled_403(response: HttpResponse, sentence: str) -> None:
    body = response.content.decode()
    assert response.status_code == 403
    assert 'data-testid="error-page"' in body and 'data-status="403"' in body
    assert sentence in body


def test_a_realtor_on_the_cluster_pages_gets_the_styled_403_with_its_sentence(realtor: Any) -> None:
    response = _client(realtor).get("/clusters/")
    _assert_styled_403(response, "Only moderators and admins can review clusters.")


@pytest.mark.parametrize(
    ("role", "method", "url_name", "sentence"),
    [
        ("moderator", "get", "listings:create", "Only realtors can create listings."),
        ("realtor", "get", "ops:page", "Only admins can start operations."),
        ("realtor", "post", "ops:index-live", "Only admins can switch index versions."),
        ("realtor", "post", "ops:search-encoder", "Only admins can choose the search encoder."),
        ("realtor", "post", "ops:index-evaluate", "Only admins can evaluate index versions."),
        ("realtor", "get", "training:runs", "Only admins can manage training runs."),
        ("realtor", "post", "clusters:rerun", "Only admins can start clustering runs."),
        (None, "get", "matching:search", "Your role cannot search photos."),
        (None, "get", "matching:duplicates", "Your role cannot search photos."),
    ],
)
def test_every_refused_page_is_the_styled_403_with_its_sentence(
    role: str | None, method: str, url_name: str, sentence: str
) -> None:
    user = UserFactory(role=role)  # None: a user with no role
    user.save()  # the factory saves the password hash only along with a role
    response = getattr(_client(user), method)(reverse(url_name))
    _assert_styled_403(response, sentence)


def test_uploading_to_another_agents_listing_is_the_styled_403(listing: Any, other_realtor: Any) -> None:
    response = _client(other_realtor).post(reverse("listings:upload", args=[listing.pk]))
    _assert_styled_403(response, "You can only upload photos to your own listings.")


def test_role_required_sends_anonymous_users_to_the_login_page() -> None:
    response = Client().get("/clusters/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_role_required_lets_a_user_with_the_permission_through(rf: RequestFactory, moderator: Any) -> None:
    view = role_required(roles.REVIEW, "no")(lambda request: HttpResponse("in"))
    request = rf.get("/x/")
    request.user = moderator
    assert view(request).content == b"in"


@pytest.mark.parametrize(("method", "allowed"), [("POST", False), ("GET", True)])
def test_the_api_permission_checks_only_its_methods_and_carries_the_sentence(
    realtor: Any, moderator: Any, method: str, allowed: bool
) -> None:
    permission = role_permission(roles.UPLOAD, "Only realtors can create listings.", methods={"POST"})()
    assert permission.message == "Only realtors can create listings."  # type: ignore[attr-defined]
    request = SimpleNamespace(method=method, user=moderator)
    assert permission.has_permission(request, None) is allowed  # type: ignore[arg-type]
    assert permission.has_permission(SimpleNamespace(method=method, user=realtor), None) is True  # type: ignore[arg-type]


def test_post_only_refuses_other_methods_with_405(rf: RequestFactory) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("done")

    guarded = post_only("ops:page")(view)
    assert guarded(rf.post("/x/")).content == b"done"
    assert guarded(rf.put("/x/")).status_code == 405


@pytest.fixture
def cluster_world(moderator: Any) -> dict[str, Any]:
    listing = ListingFactory(owner=UserFactory(role="realtor"))
    run = fake_run(blob_photos(listing, (3,), thumbs=True))
    return {"run_id": run.pk, "cluster_id": run.clusters.first().pk}  # type: ignore[union-attr]


_URL_ARGUMENT = {
    "clusters:run-current": "run_id",
    "clusters:run": "run_id",
    **{
        name: "cluster_id"
        for name in ("clusters:name", "clusters:approve", "clusters:merge", "clusters:cluster-noise")
    },
    "clusters:detail": "cluster_id",
}


@pytest.mark.parametrize(
    ("action", "page"),
    [
        ("ops:index-live", "ops:page"),
        ("ops:search-encoder", "ops:page"),
        ("ops:index-evaluate", "ops:page"),
        ("clusters:rerun", "clusters:runs"),
        ("clusters:run-current", "clusters:run"),
        ("clusters:name", "clusters:detail"),
        ("clusters:approve", "clusters:detail"),
        ("clusters:merge", "clusters:detail"),
        ("clusters:cluster-noise", "clusters:detail"),
        ("clusters:move", "clusters:list"),
        ("clusters:split", "clusters:list"),
        ("clusters:photos-noise", "clusters:list"),
        ("clusters:undo", "clusters:list"),
    ],
)
def test_a_get_on_a_post_only_action_redirects_to_its_page(
    admin_user: Any, cluster_world: dict[str, Any], action: str, page: str
) -> None:
    def url(name: str) -> str:
        key = _URL_ARGUMENT.get(name)
        return reverse(name, kwargs={key: cluster_world[key]} if key else {})

    response = _client(admin_user).get(url(action))
    assert response.status_code == 302 and response["Location"] == url(page)
