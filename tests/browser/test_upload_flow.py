"""A realtor logs in, creates a listing, uploads photos and watches the job finish live in chromium.

The upload lands on its batch's result page (post/redirect/get): reloading it posts nothing again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flatsite.core import accounts
from search.models import Job, Listing, Photo, UploadBatch
from tests import images
from tests.browser.conftest import PASSWORD, chromium_page, log_in, save_screenshot, web_accounts
from tests.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

# Records every data-status the progress box takes, so the test can tell live updates from a reload.
WATCH_STATUS = """
window.__seen = [];
window.__noReload = true;
const box = document.querySelector("#upload-job .job-progress");
new MutationObserver(() => window.__seen.push(box.getAttribute("data-status")))
  .observe(box, {attributes: true, attributeFilter: ["data-status"]});
if (box.getAttribute("data-status")) { window.__seen.push(box.getAttribute("data-status")); }
"""

# Counts websockets a page opens, by path: a dropped socket is reopened by jobs.js and would hide lost
# pushes. (The extract job's box, added when the upload's job names it, opens a socket of its own.)
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = {};
  window.WebSocket = function (url, ...rest) {
    const path = new URL(url).pathname;
    window.__sockets[path] = (window.__sockets[path] || 0) + 1;
    return new Native(url, ...rest);
  };
  window.WebSocket.prototype = Native.prototype;
})();
"""
RESULT_URL = re.compile(r".*/listings/(\d+)/uploads/\d+/$")
BOX = "#upload-job .job-progress"


def _realtor(settings: Any) -> Any:
    web_accounts(settings)
    return accounts.user_create(username="rita", password=PASSWORD, role="realtor")


def _files(photo: bytes) -> list[dict[str, Any]]:
    return [
        {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": photo},
        {"name": "b.jpg", "mimeType": "image/jpeg", "buffer": photo},  # the same bytes again
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Viewing on Tuesday.\n"},
    ]


def _log_in_and_create_listing(page: Any, base: str) -> None:
    log_in(page, base, "rita")
    page.click("text=Create a listing")
    page.fill("#id_title", "Sunny two-bedroom by the park")
    page.fill("#id_address", "12 Elm Street")
    page.fill("#id_zipcode", "92880")
    page.fill("#id_bedrooms", "2")
    page.fill("#id_bathrooms", "1.5")
    page.fill("#id_price", "450000")
    page.click("text=Create listing")
    page.wait_for_url(f"{base}/listings/*/")
    assert "created" in page.inner_text(".messages")


def _upload(page: Any, photo: bytes) -> None:
    page.set_input_files("input[name=files]", _files(photo))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(RESULT_URL)  # redirected to the batch's result page, not left on the POST's URL
    _check_outcomes(page)


def _check_outcomes(page: Any) -> None:
    outcomes = {li.get_attribute("data-name"): li for li in page.query_selector_all("li.outcome")}
    assert set(outcomes) == {"a.jpg", "b.jpg", "notes.txt"}
    assert "outcome-accepted" in outcomes["a.jpg"].get_attribute("class")
    assert "outcome-accepted" in outcomes["b.jpg"].get_attribute("class")
    assert "outcome-rejected" in outcomes["notes.txt"].get_attribute("class")
    assert "unsupported file type" in outcomes["notes.txt"].inner_text()


def _items(page: Any) -> dict[str, tuple[str, str]]:
    """name -> (photo id, text) of the live per-photo list."""
    found = {}
    for li in page.query_selector_all(f"{BOX} li.item"):
        text = li.inner_text()
        found[text.split(":", 1)[0]] = (li.get_attribute("data-photo"), text)
    return found


def test_upload_shows_outcomes_and_live_progress_to_done(
    chromium_ready: None, web: Any, start_worker: Any, settings: Any, process_logs: Path
) -> None:
    user = _realtor(settings)
    photo = images.jpeg(7, (800, 600))
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1100, "height": 900}) as page:
        page.add_init_script(COUNT_SOCKETS)
        _log_in_and_create_listing(page, base)
        _upload(page, photo)
        box = BOX
        # No worker yet: the job waits in the queue while the page is connected and live.
        page.wait_for_selector(f'{box}[data-status="queued"]')
        page.wait_for_function(
            "document.querySelector('#upload-job .job-progress [data-field=live]').textContent === '● live'"
        )
        searchable = page.inner_text("#searchable [data-field=searchable]")
        assert searchable.startswith("The photos are being processed"), searchable
        page.evaluate(WATCH_STATUS)
        start_worker("browser-worker")
        page.wait_for_selector(f'{box}[data-status="succeeded"]', timeout=90_000)
        assert page.inner_text(f'{box} [data-field="percent"]') == "100%"
        assert page.inner_text(f'{box} [data-field="count"]') == "2/2"
        assert page.eval_on_selector(f'{box} [data-field="bar"]', "el => el.style.width") == "100%"
        page.wait_for_function(f"document.querySelectorAll('{BOX} li.item-duplicate').length === 1")
        items = _items(page)
        a_id = items["a.jpg"][0]
        assert items["a.jpg"][1] in ("a.jpg: processed", "a.jpg: indexed")
        assert items["b.jpg"][1] == f"b.jpg: duplicate (copy of photo #{a_id})"
        assert page.evaluate("window.__noReload") is True  # every change arrived over the websocket ...
        job_socket = page.get_attribute(box, "data-ws-path")
        assert page.evaluate("window.__sockets")[job_socket] == 1  # ... the one opened with the page
        seen = page.evaluate("window.__seen")
        order = ["queued", "running", "succeeded"]
        assert seen[-1] == "succeeded" and [order.index(s) for s in seen] == sorted(
            order.index(s) for s in seen
        ), seen
        # The upload's job names the extraction job that makes the photos searchable; it is followed live.
        page.wait_for_selector('#extract-job .job-progress[data-job-kind="extract"] a[href^="/jobs/"]')
        page.wait_for_selector('#searchable[data-state="now"]', timeout=180_000)
        assert page.inner_text("#searchable [data-field=searchable]").startswith("Searchable now")
        extract_href = page.get_attribute("#extract-job .job-progress a", "href")
        assert page.evaluate("window.__noReload") is True
        page.wait_for_timeout(400)  # the progress bars' width transition (.3s) ends before the screenshot
        save_screenshot(page, ROOT / "test-artifacts", "upload.png")

    listing = Listing.objects.get(owner=user)
    photos = {p.original_name: p for p in Photo.objects.filter(listing=listing)}
    assert set(photos) == {"a.jpg", "b.jpg"}  # the text file was never stored
    assert photos["a.jpg"].pk == int(a_id)
    assert photos["a.jpg"].status in (Photo.Status.PROCESSED, Photo.Status.INDEXED)  # extraction follows
    assert (photos["b.jpg"].status, photos["b.jpg"].duplicate_of_id) == (Photo.Status.DUPLICATE, int(a_id))
    job = Job.objects.get(created_by=user, kind=Job.Kind.INGEST)
    assert (job.status, job.done, job.total) == (Job.Status.SUCCEEDED, 2, 2)
    extract = Job.objects.get(kind=Job.Kind.EXTRACT)
    assert (extract.status, extract_href) == (Job.Status.SUCCEEDED, f"/jobs/{extract.pk}/")
    assert job.result["extract_job"] == extract.pk


def test_reloading_the_upload_result_page_posts_nothing_again(
    chromium_ready: None, web: Any, settings: Any, process_logs: Path
) -> None:
    user = _realtor(settings)
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1100, "height": 900}) as page:
        _log_in_and_create_listing(page, base)
        _upload(page, images.jpeg(8, (640, 480)))
        result_url = page.url
        job_id = page.get_attribute(BOX, "data-job-id")
        page.reload()
        page.wait_for_selector(BOX)
        assert page.url == result_url  # still the bookmarkable result page
        _check_outcomes(page)  # every file's outcome is still shown ...
        assert page.get_attribute(BOX, "data-job-id") == job_id  # ... with the same job
        listing_page = f"{base}/listings/{RESULT_URL.match(result_url)[1]}/"  # type: ignore[index]
        page.goto(f"{listing_page}upload/")  # reopening the upload URL: the listing page, not a blank 405
        assert page.url == listing_page and page.inner_text("h1") == "Sunny two-bedroom by the park"

    # Nothing was posted again: one batch, one job, the two photos of the first upload.
    assert UploadBatch.objects.filter(uploaded_by=user).count() == 1
    assert Job.objects.filter(created_by=user).count() == 1
    names = Photo.objects.filter(uploader=user).values_list("original_name", flat=True)
    assert sorted(names) == ["a.jpg", "b.jpg"]
