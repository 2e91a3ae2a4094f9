"""CSRF on every URL: a logged-in admin's session without a token changes nothing, whatever the method.

The URLs come from the resolver (includes followed, converters filled with existing objects' ids), so a
new page is covered the day it is added; a URL this test cannot build fails it. The JSON API is
csrf-exempt at the Django level on purpose (DRF) and must therefore refuse session auth without a token
itself, while token auth (no cookies, nothing a foreign page can send) works without one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from rest_framework.authtoken.models import Token

from search.listings import ingest
from search.models import Job, Photo
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory
from tests.search.clusters.fixtures import fake_run
from training import services as training_services

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
# Route converters and regex groups in the patterns: <int:listing_id>, (?P<app_label>...), ...
_ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_PARAM = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


def _patterns(entries: list[Any], prefix: str = "", ns: str = "") -> list[tuple[str, str, Any]]:
    """(qualified name, full pattern text, URLPattern) of every view, includes followed."""
    found: list[tuple[str, str, Any]] = []
    for entry in entries:
        if isinstance(entry, URLResolver):
            inner = f"{ns}{entry.namespace}:" if entry.namespace else ns
            found += _patterns(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            found.append((f"{ns}{entry.name}", prefix + str(entry.pattern), entry))
    return found


@pytest.fixture
def objects(admin_user: Any, tmp_path: Any) -> dict[str, Any]:
    """One existing object of every kind a URL names, keyed by the URL parameter that names it."""
    listing = ListingFactory(owner=admin_user)
    result = ingest.photo_ingest(
        listing=listing, uploader=admin_user, items=[upload("a.jpg", images.jpeg(1))], enqueue=False
    )
    photo = Photo.objects.get(pk=result.outcomes[0].photo_id)
    job = Job.objects.get(pk=result.job.pk if result.job else 0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        (folder / f"r{i}.jpg").write_bytes(images.jpeg(10 + i, (64, 48)))
    run = training_services.run_start(
        preset="tiny-test", data=training_services.data_choice_folder(folder), enqueue=False
    )
    cluster_run = fake_run([[photo]])
    Group.objects.get_or_create(name="csrf-test")
    return {
        "listing_id": listing.pk,
        "photo_id": photo.pk,
        "job_id": job.pk,
        "batch_id": result.batch.pk if result.batch else 0,
        "training:run_id": run.pk,
        "clusters:run_id": cluster_run.pk,
        "cluster_id": cluster_run.clusters.first().pk,  # type: ignore[attr-defined]
        "step": 4,
        "variant": "image",
        "app_label": "search",
        "url": "search/unknown/",
        "content_type_id": 1,
        "object_id": listing.pk,
        "id": admin_user.pk,
    }


def _value(name: str, param: str, objects: dict[str, Any]) -> str:
    if param == "run_id":
        param = "clusters:run_id" if name.startswith("clusters") else "training:run_id"
    if param not in objects:
        raise KeyError(f"{name}: no object for URL parameter {param!r}; add one to the fixture")
    return str(objects[param])


def _url(name: str, pattern: str, objects: dict[str, Any]) -> str:
    path = _REGEX_PARAM.sub(lambda m: _value(name, m.group(1), objects), pattern)
    path = _ROUTE_PARAM.sub(lambda m: _value(name, m.group(1), objects), path)
    return "/" + path.replace("^", "").replace("$", "")


def test_no_state_changing_request_without_a_csrf_token_gets_through(
    admin_user: Any, objects: dict[str, Any]
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    covered: list[str] = []
    failures: list[str] = []
    for name, pattern, entry in _patterns(get_resolver().url_patterns):
        url = _url(name, pattern, objects)
        assert resolve(url).func == entry.callback, f"{url} does not reach {name}"
        for method in UNSAFE:
            response = getattr(client, method)(url)
            if response.status_code != 403 or b"CSRF" not in response.content:
                failures.append(f"{method.upper()} {url} ({name}) -> {response.status_code}")
        covered.append(f"{url} ({name})")
    print("CSRF-checked URLs:\n  " + "\n  ".join(covered))
    assert failures == []
    assert len(covered) == len(_patterns(get_resolver().url_patterns))
    upload_url = f"/listings/{objects['listing_id']}/upload/"
    assert {upload_url, "/api/listings/"} <= {c.split()[0] for c in covered}


def test_state_changing_views_do_change_state_with_a_token(admin_user: Any) -> None:
    # The 403s above are CSRF refusals, not views that refuse POST anyway: with the token it works.
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.get(reverse("listings:create"))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("listings:create"), {"title": "Flat", "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_api_refuses_session_without_token_but_accepts_token_auth(admin_user: Any) -> None:
    session = Client(enforce_csrf_checks=True)
    session.force_login(admin_user)
    refused = session.post("/api/listings/", {"title": "x"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    token = Token.objects.create(user=admin_user)
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token.key}")
    created = api.post("/api/listings/", {"title": "By token"}, content_type="application/json")
    assert created.status_code == 201, created.content
