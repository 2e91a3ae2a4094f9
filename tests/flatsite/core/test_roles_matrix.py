"""Every role against every URL the resolver knows (pages, actions, API), anonymous included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from search.models import Job, UploadBatch
from tests import images
from tests.factories import ListingFactory, UserFactory
from tests.search.clusters.fixtures import blob_photos, fake_run
from training import services as training_services

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "realtor", "other_realtor", "moderator", "admin")
# Django's own admin and the login/logout pages guard themselves (staff flag, CSRF) and are not ours.
EXEMPT_PREFIXES = ("django-admin/", "accounts/")
L = "login"  # a redirect to the login page

# url name: (method, expected status per role in ROLES order). The method is the one the URL exists for:
# GET for pages, POST for actions (an empty POST: allowed roles reach the form check, 302 or 400).
# The API answers a caller without credentials 401 (with WWW-Authenticate), not 403.
MATRIX: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "listings:home": ("get", (L, 200, 200, 200, 200)),
    "listings:list": ("get", (L, 200, 200, 200, 200)),
    "listings:create": ("get", (L, 200, 200, 403, 200)),
    "listings:detail": ("get", (L, 200, 404, 200, 200)),
    # Those who may open the full listing are sent there; a realtor none of whose photos (or searches)
    # matched it gets nothing.
    "matching:listing-matched": ("get", (L, 302, 404, 302, 302)),
    "listings:upload": ("post", (L, 400, 403, 403, 400)),
    "listings:upload-result": ("get", (L, 200, 404, 200, 200)),  # whoever may open the listing
    "jobs:list": ("get", (L, 200, 200, 200, 200)),
    "jobs:detail": ("get", (L, 200, 404, 404, 200)),
    "jobs:cancel": ("post", (L, 302, 404, 404, 302)),
    "matching:search": ("get", (L, 200, 200, 200, 200)),
    # Another agent's photo opens to a realtor only once a search showed it or it matches one of theirs.
    "matching:search-photo": ("get", (L, 200, 404, 200, 200)),
    "listings:photo-file": ("get", (L, 200, 404, 200, 200)),
    "matching:duplicates": ("get", (L, 200, 200, 200, 200)),
    "ops:page": ("get", (L, 403, 403, 403, 200)),
    "ops:index-live": ("post", (L, 403, 403, 403, 302)),
    "ops:index-evaluate": ("post", (L, 403, 403, 403, 302)),
    "ops:search-encoder": ("post", (L, 403, 403, 403, 302)),
    "api:schema": ("get", (200, 200, 200, 200, 200)),
    "api:docs": ("get", (200, 200, 200, 200, 200)),
    "api:token": ("post", (400, 400, 400, 400, 400)),
    "api:listings": ("post", (401, 400, 400, 403, 400)),
    "api:listing": ("get", (401, 200, 404, 200, 200)),
    "api:listing-photos": ("post", (401, 400, 403, 403, 400)),
    "api:job": ("get", (401, 200, 404, 404, 200)),
    "api:search": ("post", (401, 400, 400, 400, 400)),
    "training:runs": ("get", (L, 403, 403, 403, 200)),
    "training:run-create": ("post", (L, 403, 403, 403, 400)),
    "training:run": ("get", (L, 403, 403, 403, 200)),
    "training:run-snapshot": ("get", (L, 403, 403, 403, 200)),
    "training:run-cancel": ("post", (L, 403, 403, 403, 302)),
    "training:run-resume": ("post", (L, 403, 403, 403, 302)),
    "training:run-index": ("post", (L, 403, 403, 403, 302)),
    "training:sample": ("get", (L, 403, 403, 403, 404)),  # no sample at step 0 yet
    "clusters:list": ("get", (L, 403, 403, 200, 200)),
    "clusters:runs": ("get", (L, 403, 403, 200, 200)),
    "clusters:rerun": ("post", (L, 403, 403, 403, 302)),
    "clusters:run": ("get", (L, 403, 403, 200, 200)),
    "clusters:run-current": ("post", (L, 403, 403, 403, 302)),
    "clusters:noise": ("get", (L, 403, 403, 200, 200)),
    "clusters:run-map": ("get", (L, 403, 403, 200, 200)),
    "clusters:map-data": ("get", (L, 403, 403, 200, 200)),
    "clusters:run-history": ("get", (L, 403, 403, 200, 200)),
    "clusters:map": ("get", (L, 403, 403, 200, 200)),
    "clusters:history": ("get", (L, 403, 403, 200, 200)),
    "clusters:detail": ("get", (L, 403, 403, 200, 200)),
    "clusters:name": ("post", (L, 403, 403, 302, 302)),
    "clusters:approve": ("post", (L, 403, 403, 302, 302)),
    "clusters:merge": ("post", (L, 403, 403, 302, 302)),
    "clusters:cluster-noise": ("post", (L, 403, 403, 200, 200)),  # an unconfirmed POST: confirmation page
    "clusters:photo": ("get", (L, 403, 403, 200, 200)),
    "clusters:move": ("post", (L, 403, 403, 404, 404)),
    "clusters:split": ("post", (L, 403, 403, 404, 404)),
    "clusters:photos-noise": ("post", (L, 403, 403, 404, 404)),
    "clusters:undo": ("post", (L, 403, 403, 404, 404)),
}


def _patterns(
    resolver: URLResolver, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _patterns(entry, prefix + str(entry.pattern), inner)
        else:
            yield prefix + str(entry.pattern), namespace, entry


def _our_url_names() -> set[str]:
    return {
        f"{namespace}{p.name}"
        for route, namespace, p in _patterns(get_resolver())
        if not route.startswith(EXEMPT_PREFIXES)
    }


def test_every_url_of_the_site_is_in_the_matrix() -> None:
    names = _our_url_names()
    assert None not in names and "None" not in names, "every URL needs a name to be checked"
    assert names == set(MATRIX), {"missing": names - set(MATRIX), "stale": set(MATRIX) - names}


@pytest.fixture
def world(db: Any, tmp_path: Path) -> dict[str, Any]:
    owner = UserFactory(role="realtor")
    users = {
        "realtor": owner,
        "other_realtor": UserFactory(role="realtor"),
        "moderator": UserFactory(role="moderator"),
        "admin": UserFactory(role="admin"),
    }
    listing = ListingFactory(owner=owner)
    blobs = blob_photos(listing, (3, 3), thumbs=True)
    run = fake_run(blobs)
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(images.jpeg(i, (64, 48)))
    training_run = training_services.run_start(
        preset="tiny-test", data=training_services.data_choice_folder(folder), enqueue=False
    )
    ids = {
        "listing_id": listing.pk,
        "job_id": Job.objects.create(kind=Job.Kind.INGEST, created_by=owner).pk,
        "batch_id": UploadBatch.objects.create(listing=listing, uploaded_by=owner).pk,
        "cluster_id": run.clusters.first().pk,  # type: ignore[union-attr]
        "photo_id": blobs[0][0].pk,
        "variant": "thumb",
        "step": 0,
    }
    return {"users": users, "ids": ids, "clustering_run": run.pk, "training_run": training_run.pk}


def _url(world: dict[str, Any], name: str) -> str:
    route = next(str(p.pattern) for _, ns, p in _patterns(get_resolver()) if f"{ns}{p.name}" == name)
    run_id = world["training_run"] if name.startswith("training:") else world["clustering_run"]
    ids = {**world["ids"], "run_id": run_id}
    return reverse(name, kwargs={key: value for key, value in ids.items() if f":{key}>" in route})


def _status(world: dict[str, Any], role: str, method: str, url: str) -> int | str:
    client = Client()
    if role != "anonymous":
        client.force_login(world["users"][role])
    response = getattr(client, method)(url)
    if response.status_code == 302 and "/accounts/login/" in response["Location"]:
        return L
    return int(response.status_code)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_endpoint_matrix(world: dict[str, Any], name: str) -> None:
    method, expected = MATRIX[name]
    url = _url(world, name)
    got = tuple(_status(world, role, method, url) for role in ROLES)
    assert got == expected, f"{method.upper()} {url}: roles {ROLES} got {got}, want {expected}"
