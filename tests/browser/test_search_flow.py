"""A realtor searches with an edited copy of another agent's photo and sees it and the duplicate listing.

Its result opens what the realtor may see of that listing: title, agent and matched photos, not the others.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageDraw

from flatsite.core import accounts
from search import pipeline
from search.listings import ingest
from search.matching import features
from search.models import Photo
from tests import images
from tests.browser.conftest import PASSWORD, chromium_page, log_in, save_screenshot, web_accounts
from tests.conftest import upload
from tests.factories import ListingFactory
from tests.processes import ROOT
from tests.shared_data import shared_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

# Two houses not among the dataset's known shared-photo pairs (9/21, 59/72), four rooms each.
HOUSES = (3, 4)
ROOMS = ("frontal", "kitchen", "bedroom", "bathroom")


def _users(settings: Any) -> Any:
    web_accounts(settings)
    accounts.user_create(username="alma", password=PASSWORD, role="realtor")
    return accounts.user_create(username="bert", password=PASSWORD, role="realtor")


def _photo_sets() -> list[dict[str, bytes]]:
    """Per listing: file name -> JPEG bytes; real house photos when ../shared/data is there."""
    shared = shared_data_dir()
    if shared is not None:
        return [
            {f"{h}_{room}.jpg": (shared / "houses" / f"{h}_{room}.jpg").read_bytes() for room in ROOMS}
            for h in HOUSES
        ]
    return [
        {f"p{i}.jpg": images.encode(images.picture(200 + i, (480, 360)), "JPEG", quality=92) for i in ids}
        for ids in ((0, 1), (2, 3, 4, 5))  # four in the target's listing, as with the house photos
    ]


def _collection(owner: Any) -> dict[str, Any]:
    """Two listings of realtor B, ingested and extracted in this process (features, live index on disk)."""
    titles = ("Bright loft near the river", "Garden flat with terrace")
    listings = []
    for title, photos in zip(titles, _photo_sets(), strict=True):
        listing = ListingFactory(owner=owner, title=title)
        items = [upload(name, data) for name, data in photos.items()]
        result = ingest.photo_ingest(listing=listing, uploader=owner, items=items, enqueue=False)
        assert result.job is not None
        pipeline.ingest_inline(result.job.pk)
        listings.append(listing)
    features.extract_inline()
    target = Photo.objects.filter(listing=listings[1]).order_by("pk")[1]
    assert target.status == Photo.Status.INDEXED, target.status
    return {"listings": listings, "target": target}


def _edited_copy(photo: Photo) -> bytes:
    """Crop about 17 %, stamp a text watermark, re-encode as JPEG: what a copying agent re-posts."""
    from flatsite.core import storage

    with Image.open(storage.media_path(photo.image_path)) as img:
        w, h = img.size
        out = img.convert("RGB").crop((int(0.09 * w), int(0.08 * h), int(0.92 * w), int(0.91 * h)))
    draw = ImageDraw.Draw(out)
    for y in (12, out.height // 2, out.height - 24):
        draw.text((14, y), "ACME REALTY (c) 2026", fill=(255, 255, 255))
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=82)
    return buffer.getvalue()


def _search_with(page: Any, name: str, mime: str, data: bytes, similar: int = 10) -> None:
    page.fill("#search-form input[name=k]", str(similar))
    page.set_input_files("#search-file", [{"name": name, "mimeType": mime, "buffer": data}])
    # The first search in the server loads the encoder (torch): generous on a loaded machine.
    with page.expect_navigation(timeout=150_000):
        page.click("#search-form button[type=submit]")


def _edited_group_thumbs(page: Any) -> list[str]:
    """data-photo ids of the thumbs that directly follow the "Edited copy" heading."""
    return page.eval_on_selector(
        '[data-level-group="edited"]',
        "h => Array.from(h.nextElementSibling.querySelectorAll('figure.thumb'), f => f.dataset.photo)",
    )


def _photo_ids(page: Any, selector: str) -> set[int]:
    return set(page.eval_on_selector_all(selector, "fs => fs.map(f => Number(f.dataset.photo))"))


def test_edited_copy_search_shows_original_and_probable_duplicate_listing(
    chromium_ready: None, web: Any, settings: Any
) -> None:
    bert = _users(settings)
    built = _collection(bert)
    target, owner_listing = built["target"], built["listings"][1]
    owner_photos = set(Photo.objects.filter(listing=owner_listing).values_list("pk", flat=True))
    query = _edited_copy(target)
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1200, "height": 900}) as page:
        log_in(page, base, "alma")
        page.click("nav >> text=Search")
        page.wait_for_url(f"{base}/search/")

        _search_with(page, "notes.txt", "text/plain", b"Viewing on Tuesday.\n")
        error = page.inner_text("#search-error")
        assert "Cannot search with this file" in error and "unsupported file type" in error
        assert page.locator("#results").count() == 0

        # One similar-look result: the listing then has photos the search did not show.
        _search_with(page, "copy-from-portal.jpg", "image/jpeg", query, similar=1)
        page.wait_for_selector("#results")
        assert page.locator("#search-error").count() == 0
        assert "Edited copy" in page.inner_text('[data-level-group="edited"]')
        assert str(target.pk) in _edited_group_thumbs(page)
        thumb = page.locator(f'#results figure.thumb[data-level="edited"][data-photo="{target.pk}"]')
        assert target.original_name in thumb.inner_text()
        assert thumb.locator(".evidence").inner_text().startswith("Same photo")  # in words
        assert "affine_inliers" in (thumb.locator("details.evidence-numbers").text_content() or "")
        # The thumbnail really loads (a broken image has naturalWidth 0).
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=thumb.locator("img").element_handle()
        )
        row = page.locator(f'#by-listing tr[data-listing="{owner_listing.pk}"]')
        assert row.get_attribute("data-best") == "edited"
        assert "Probable duplicate listing" in row.locator(".badge.probable-duplicate").inner_text()
        assert owner_listing.title in row.inner_text()
        save_screenshot(page, ROOT / "test-artifacts", "search.png")
        shown = _photo_ids(page, "#results figure.match") & owner_photos
        assert target.pk in shown and shown < owner_photos, (shown, owner_photos)

        # Bert's listing is not Alma's to open: the result links to what she may see of it.
        link = thumb.locator("a.listing")
        assert link.get_attribute("href") == f"/listings/{owner_listing.pk}/matched/"
        with page.expect_navigation() as opened:
            link.click()
        assert opened.value.status == 200, opened.value.status
        assert page.inner_text("#matched-title") == owner_listing.title
        assert page.inner_text("#matched-agent") == "bert"
        assert _photo_ids(page, "#matched-photos figure.thumb") == shown  # the others stay private
        matched = page.locator(f'#matched-photos figure.thumb[data-photo="{target.pk}"]')
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=matched.locator("img").element_handle()
        )
        page.screenshot(path=str(ROOT / "test-artifacts" / "search-matched-listing.png"), full_page=True)

        # The matched thumb searches from the stored photo: it is shown as the query and left out.
        with page.expect_navigation(timeout=120_000):
            matched.locator("a").first.click()
        assert page.url == f"{base}/search/photo/{target.pk}/"
        assert page.locator(f'#results [data-query-photo="{target.pk}"] img').count() == 1
        assert page.locator(f'#results figure.match[data-photo="{target.pk}"]').count() == 0
        query_link = page.locator(f'#results [data-query-photo="{target.pk}"] a')
        assert query_link.get_attribute("href") == f"/listings/{owner_listing.pk}/matched/"
        page.screenshot(path=str(ROOT / "test-artifacts" / "search-photo.png"), full_page=True)
