"""Error pages: styled pages for people (never Django's technical page), the API's JSON shape under /api/."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory

from flatsite import errors

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_a_styled_404_that_lists_no_url_patterns(client: Client, realtor: Any) -> None:
    client.force_login(realtor)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert 'data-testid="error-page"' in body
    assert "Page not found" in body
    assert "URLconf" not in body and "listings:home" not in body


def test_an_unknown_api_path_answers_the_json_error_shape(client: Client, realtor: Any) -> None:
    client.force_login(realtor)
    response = client.get("/api/no-such-endpoint/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "error": "There is nothing at this address.",
        "detail": {"status": 404, "path": "/api/no-such-endpoint/"},
    }


def test_permission_denied_renders_the_styled_403_with_its_reason(rf: RequestFactory, realtor: Any) -> None:
    request = rf.get("/clusters/")
    request.user = realtor
    response = errors.permission_denied(request, PermissionDenied("Only moderators can review clusters."))
    assert response.status_code == 403
    body = response.content.decode()
    assert 'data-status="403"' in body and "Only moderators can review clusters." in body


def test_a_server_error_page_renders_without_a_request_context(rf: RequestFactory) -> None:
    response = errors.server_error(rf.get("/listings/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_server_error_under_the_api_is_json_and_hides_the_exception(rf: RequestFactory) -> None:
    response = errors.server_error(rf.get("/api/search/"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"].startswith("The server failed to answer")
