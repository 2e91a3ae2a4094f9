"""Logging out: POST logs out; a GET on the URL asks with a "Log out" button instead of a blank 405."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_get_on_logout_shows_a_log_out_button_and_keeps_the_user_logged_in(realtor: Any) -> None:
    client = Client()
    client.force_login(realtor)
    response = client.get(reverse("logout"))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'action="{reverse("logout")}"' in html and 'method="post"' in html and ">Log out</button>" in html
    assert client.get(reverse("listings:home")).status_code == 200  # a GET alone logged nobody out


def test_the_log_out_button_logs_out_and_goes_to_the_login_page(realtor: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(realtor)
    page = client.get(reverse("logout"))
    token = page.context["csrf_token"]
    response = client.post(reverse("logout"), {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("listings:home")).status_code == 302  # logged out: sent to the login page


def test_get_on_logout_when_logged_out_goes_to_the_login_page() -> None:
    response = Client().get(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
