"""Live pages follow jobs to their end in chromium: the Jobs list adds new jobs and a finished job's page
drops its Cancel button; a listing's photo grid leaves "received" when its upload's job finishes.

Nothing is reloaded: each page only gets the jobs' snapshots over its websockets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.models import Job, Photo
from tests import images
from tests.browser.conftest import chromium_page
from tests.browser.test_upload_flow import _log_in_and_create_listing, _realtor, _upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

# Records which websocket paths have opened, so a test acts only once a page listens.
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__open = {};
  window.WebSocket = function (url, ...rest) {
    const ws = new Native(url, ...rest);
    ws.addEventListener("open", () => { window.__open[new URL(url).pathname] = true; });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
})();
"""
NO_RELOAD = "window.__noReload = true"


def _listening(page: Any, path: str) -> None:
    page.wait_for_function(f"window.__open && window.__open[{path!r}] === true")
    page.evaluate(NO_RELOAD)


def _row(page: Any, job_id: int) -> tuple[str, str, str]:
    row = f'#job-table [data-job-row="{job_id}"]'
    cells = page.query_selector_all(f"{row} td")
    return cells[1].inner_text(), cells[2].inner_text(), cells[3].inner_text()


def test_jobs_list_adds_a_new_job_live_and_its_page_drops_cancel_when_it_finishes(
    chromium_ready: None, web: Any, start_worker: Any, settings: Any, process_logs: Path
) -> None:
    _realtor(settings)
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1100, "height": 900}) as page:
        _log_in_and_create_listing(page, base)
        jobs_page = page.context.new_page()
        jobs_page.add_init_script(TRACK_SOCKETS)
        jobs_page.goto(f"{base}/jobs/")
        assert jobs_page.query_selector("#job-table [data-job-row]") is None  # no jobs yet
        _listening(jobs_page, "/ws/jobs/")
        _upload(page, images.jpeg(11, (800, 600)))  # in the other tab; no worker yet, so the job waits
        jobs_page.wait_for_selector("#job-table [data-job-row]")
        job_id = int(jobs_page.get_attribute("#job-table [data-job-row]", "data-job-row"))
        assert _row(jobs_page, job_id) == ("ingest", "queued", "0/2 photos")
        assert jobs_page.get_attribute(f'[data-job-row="{job_id}"] a', "href") == f"/jobs/{job_id}/"
        assert jobs_page.query_selector("#job-table [data-empty]") is None

        page.add_init_script(TRACK_SOCKETS)
        page.goto(f"{base}/jobs/{job_id}/")
        assert page.is_visible(f'[data-job-cancel="{job_id}"]')
        _listening(page, f"/ws/jobs/{job_id}/")
        page.wait_for_function(
            "document.querySelector('.job-progress [data-field=live]').textContent === '● live'"
        )
        start_worker("jobs-live-worker")
        page.wait_for_selector('.job-progress[data-status="succeeded"]', timeout=120_000)
        page.wait_for_selector(f'[data-job-cancel="{job_id}"]', state="hidden")
        assert page.inner_text(".job-progress [data-field=live]") == ""  # a finished job is not "● live"
        assert page.inner_text(".job-progress [data-field=message]").startswith("finished")

        jobs_page.wait_for_selector(f'[data-job-row="{job_id}"] .status-succeeded')
        assert _row(jobs_page, job_id) == ("ingest", "succeeded", "2/2 photos")
        # The extract job the upload's job queued is added too, on top, by the worker's announcement.
        jobs_page.wait_for_function("document.querySelectorAll('#job-table [data-job-row]').length === 2")
        extract_id = int(jobs_page.get_attribute("#job-table tbody tr:first-child", "data-job-row"))
        assert _row(jobs_page, extract_id)[0] == "extract"
        assert page.evaluate("window.__noReload") is True and jobs_page.evaluate("window.__noReload") is True

    assert Job.objects.get(pk=job_id).status == Job.Status.SUCCEEDED
    assert Job.objects.get(pk=extract_id).kind == Job.Kind.EXTRACT


def test_listing_photo_grid_leaves_received_live_when_its_job_finishes(
    chromium_ready: None, web: Any, start_worker: Any, settings: Any, process_logs: Path
) -> None:
    user = _realtor(settings)
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1100, "height": 900}) as page:
        page.add_init_script(TRACK_SOCKETS)
        _log_in_and_create_listing(page, base)
        listing_url = page.url
        _upload(page, images.jpeg(12, (800, 600)))
        job_id = int(page.get_attribute("#upload-job .job-progress", "data-job-id"))
        page.goto(listing_url)
        statuses = (
            "Array.from(document.querySelectorAll('figure.thumb figcaption .status')).map(s => s.textContent)"
        )
        assert page.evaluate(statuses) == ["received", "received"]
        assert page.query_selector_all("figure.thumb img") == []  # no thumbnails yet
        # No need to wait for the socket: its first message is the job's snapshot, whenever it opens.
        page.evaluate(NO_RELOAD)
        start_worker("listing-live-worker")
        page.wait_for_function(f"!{statuses}.includes('received')", timeout=120_000)
        figures = {
            f.query_selector("figcaption").inner_text().split("\n")[0]: f
            for f in page.query_selector_all("figure.thumb")
        }
        a, b = figures["a.jpg"], figures["b.jpg"]
        assert a.get_attribute("data-status") in ("processed", "indexed")
        assert a.query_selector("[data-field=status]").inner_text() == a.get_attribute("data-status")
        assert b.query_selector("[data-field=status]").inner_text() == "duplicate"
        assert f"copy of #{a.get_attribute('data-photo')}" in b.inner_text()
        assert a.query_selector("img") is not None and b.query_selector("img") is not None
        page.wait_for_selector(f'[data-upload-job="{job_id}"][data-status="succeeded"]')
        assert page.evaluate("window.__noReload") is True

    photos = {p.original_name: p.status for p in Photo.objects.filter(uploader=user)}
    assert photos["b.jpg"] == Photo.Status.DUPLICATE
