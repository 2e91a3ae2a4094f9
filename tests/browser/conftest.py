"""Browser fixtures: a real daphne server and Celery worker (shared with the integration tests), chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from flatsite.core import accounts
from tests import processes
from tests.integration.conftest import (  # noqa: F401 - fixtures and the failure hook, re-exported
    _data_dir,
    process_logs,
    pytest_runtest_makereport,
    redis_url,
    send_tasks,
    shared_data_dir,
    start_worker,
    stop_all,
)

CHROMIUM = Path(os.environ.get("FLATSITE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct-horse-battery-7"
SCREENSHOTS = processes.ROOT / "docs" / "screenshots"


@pytest.fixture
def web(
    request: pytest.FixtureRequest,
    django_db_setup: Any,
    redis_url: str,  # noqa: F811
    shared_data_dir: Path,  # noqa: F811
    process_logs: Path,  # noqa: F811
) -> Iterator[processes.Service]:
    """daphne serving flatsite.asgi on a free loopback port, on the test database; .extra['url']."""
    env = processes.service_env(redis_url=redis_url, data_dir=shared_data_dir)
    server = processes.daphne_server(env, process_logs)
    try:
        yield server
    finally:
        stop_all(request, [server])


@pytest.fixture
def chromium_ready() -> None:
    """Skip unless Playwright and a system chromium are installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set FLATSITE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")


@contextlib.contextmanager
def chromium_page(**context_options: Any) -> Iterator[Any]:
    """A page in a fresh headless chromium; closed (with the browser) on the way out, whatever happens.

    Playwright's sync API keeps an event loop running in this thread, so Django's ORM refuses to be
    called inside this block: query the database before or after it.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(**context_options)
            context.set_default_timeout(60_000)
            yield context.new_page()
        finally:
            browser.close()


def web_accounts(settings: Any) -> None:
    """Set up roles and the password hasher the web process checks (Django's default, not the tests' MD5)."""
    settings.PASSWORD_HASHERS = [f"{PBKDF2PasswordHasher.__module__}.{PBKDF2PasswordHasher.__name__}"]
    accounts.roles_setup()


def log_in(page: Any, base: str, username: str) -> None:
    """Sign in through the login form with PASSWORD and wait for the home page."""
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def save_screenshot(page: Any, artifacts: Path, name: str) -> None:
    """Save a full-page screenshot as artifacts/name, and as the README's docs/screenshots/name if due."""
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / name), full_page=True)
    # The README's copy is written when missing or on request, so test runs do not churn the repo.
    readme_copy = SCREENSHOTS / name
    if not readme_copy.exists() or os.environ.get("FLATSITE_UPDATE_SCREENSHOTS") == "1":
        readme_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifacts / name, readme_copy)
