"""Uploads: zip bombs, path tricks and limits refused in staging; the upload page's post/redirect/get."""

from __future__ import annotations

import io
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from flatsite.jobs import services as jobs
from search import pipeline
from search.listings import ingest
from search.listings.uploads import Staged, UploadLimits, UploadRejected, clean_name, expand_zip
from search.models import Job, Photo, UploadBatch
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory
from tests.flatsite.jobs.sending import task_send_replace


def _zip(tmp_path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], name: str = "a.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries:
            zf.writestr(entry, data)
    return path


def _expand(tmp_path: Path, archive: Path, limits: UploadLimits | None = None) -> tuple[Path, Staged]:
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = Staged()
    started = time.monotonic()
    expand_zip(archive, staging, limits or UploadLimits(), staged)
    assert time.monotonic() - started < 5
    return staging, staged


def _only_inside(tmp_path: Path, staging: Path) -> None:
    outside = [
        p for p in tmp_path.rglob("*") if p.is_file() and staging not in p.parents and p.suffix != ".zip"
    ]
    assert outside == []


def test_good_zip_extracts_images_under_generated_names(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("rooms/kitchen.jpg", images.jpeg(1)), ("bath.png", images.png(2))])
    staging, staged = _expand(tmp_path, archive)
    assert sorted(f.name for f in staged.files) == ["bath.png", "kitchen.jpg"]
    assert all(f.path.parent == staging and f.path.name != f.name for f in staged.files)


SLIP_NAMES = [
    "../evil.jpg",
    "../../etc/evil.jpg",
    "/abs/evil.jpg",
    "/evil.jpg",
    "C:\\evil.jpg",
    "c:/evil.jpg",
    "..\\..\\evil.jpg",
    "a/../../evil.jpg",
    "rtl\u202egpj.exe",
    "nul\x00.jpg",
    "x" * 300 + ".jpg",
    "zero\u200bwidth.jpg",
    "\\\\server\\share\\evil.jpg",
    "C:evil.jpg",
    "./../evil.jpg",
]


@pytest.mark.parametrize("name", SLIP_NAMES)
def test_zip_slip_names_are_rejected_and_nothing_escapes(tmp_path: Path, name: str) -> None:
    info = zipfile.ZipInfo("placeholder.jpg")
    info.filename = name  # bypass zipfile's own sanitising, as a hostile archive would
    archive = _zip(tmp_path, [(info, images.jpeg(3))])
    staging, staged = _expand(tmp_path, archive)
    assert staged.files == []
    assert len(staged.rejected) == 1
    _only_inside(tmp_path, staging)


def test_symlink_entries_are_rejected(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path, [(info, b"/etc/passwd")])
    _, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "symbolic links" in staged.rejected[0][1]


def test_duplicate_entry_names_keep_only_the_first(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", images.jpeg(4)), ("sub/a.jpg", images.jpeg(5))])
    _, staged = _expand(tmp_path, archive)
    assert len(staged.files) == 1 and "duplicate entry" in staged.rejected[0][1]


def test_compression_ratio_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("bomb.jpg", b"\0" * (20 * 1024 * 1024))])
    staging, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "zip bomb" in staged.rejected[0][1]
    assert list(staging.iterdir()) == []


def test_lying_header_sizes_are_caught_while_streaming(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", b"\1\2\3" * 400_000)])
    data = bytearray(archive.read_bytes())
    # Rewrite the declared uncompressed size (central directory) to a tiny number.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    _, staged = _expand(tmp_path, archive, UploadLimits(max_ratio=1000))
    assert staged.files == []
    assert staged.rejected


def test_nested_zips_are_not_expanded(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("a.jpg", images.jpeg(6))
    archive = _zip(tmp_path, [("inner.zip", inner.getvalue())])
    _, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "nested archives" in staged.rejected[0][1]


def test_too_many_entries_refuses_the_whole_archive_before_extraction(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(100_000):
            zf.writestr(f"{i}.jpg", b"")
    staging = tmp_path / "staging"
    staging.mkdir()
    started = time.monotonic()
    with pytest.raises(UploadRejected, match="100000 files"):
        expand_zip(path, staging, UploadLimits(max_files=500), Staged())
    assert time.monotonic() - started < 5
    assert list(staging.iterdir()) == []


def test_declared_total_size_over_the_limit_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", b"\0" * 3000), ("b.jpg", b"\0" * 3000)])
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(UploadRejected, match="expand to"):
        expand_zip(archive, staging, UploadLimits(max_total_bytes=4000), Staged())


def test_not_a_zip_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "fake.zip"
    path.write_bytes(b"definitely not a zip")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(UploadRejected, match="not a valid zip"):
        expand_zip(path, staging, UploadLimits(), Staged())


@pytest.mark.parametrize("name", ["kitchen.jpg", "dir/sub/bath.png", "dir\\win.jpg"])
def test_clean_name_keeps_the_base_name(name: str) -> None:
    assert "/" not in clean_name(name) and "\\" not in clean_name(name)


def test_duplicate_names_differing_only_in_case_keep_only_the_first(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("Kitchen.JPG", images.jpeg(7)), ("kitchen.jpg", images.jpeg(8))])
    _, staged = _expand(tmp_path, archive)
    assert [f.name for f in staged.files] == ["Kitchen.JPG"] and "duplicate entry" in staged.rejected[0][1]


def _opened_entries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(getattr(name, "filename", name))
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


@pytest.mark.parametrize(
    ("entry", "limits"),
    [
        (("ratio.jpg", b"\0" * (4 * 1024 * 1024)), UploadLimits()),  # honest header, 1000:1
        (("big.jpg", b"\1\2\3" * 400_000), UploadLimits(max_file_bytes=1_000_000, max_ratio=10**6)),
    ],
)
def test_bombs_declared_in_the_header_are_refused_before_any_byte_is_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: tuple[str, bytes], limits: UploadLimits
) -> None:
    archive = _zip(tmp_path, [entry, ("fine.jpg", images.jpeg(9))])
    opened = _opened_entries(monkeypatch)
    staging, staged = _expand(tmp_path, archive, limits)
    assert [f.name for f in staged.files] == ["fine.jpg"] and len(staged.rejected) == 1
    assert opened == ["fine.jpg"]  # the bomb entry was never opened
    assert len(list(staging.iterdir())) == 1


# --- The upload page: post/redirect/get to a batch result page that can be reloaded and bookmarked.


def _web_upload(client: Client, listing: Any, *files: tuple[str, bytes]) -> Any:
    sent = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(reverse("listings:upload", args=[listing.pk]), {"files": sent})


def _owner(listing: Any) -> Client:
    client = Client()
    client.force_login(listing.owner)
    return client


def _counts() -> tuple[int, int, int]:
    return Job.objects.count(), Photo.objects.count(), UploadBatch.objects.count()


@pytest.mark.django_db
def test_upload_post_answers_303_to_the_batch_result_page(listing: Any) -> None:
    response = _web_upload(_owner(listing), listing, ("a.jpg", images.jpeg(1)), ("notes.txt", b"hi"))
    batch = UploadBatch.objects.get()
    assert response.status_code == 303
    assert response["Location"] == reverse("listings:upload-result", args=[listing.pk, batch.pk])
    assert batch.job is not None and batch.job.kind == Job.Kind.INGEST
    assert {o["name"]: o["status"] for o in batch.outcomes} == {"a.jpg": "accepted", "notes.txt": "rejected"}


@pytest.mark.django_db
def test_reloading_the_result_page_creates_nothing_and_still_shows_every_outcome(listing: Any) -> None:
    client = _owner(listing)
    url = _web_upload(client, listing, ("a.jpg", images.jpeg(1)), ("notes.txt", b"hi"))["Location"]
    before = _counts()
    pages = [client.get(url), client.get(url)]
    assert _counts() == before == (1, 1, 1)
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert 'class="outcome outcome-accepted" data-name="a.jpg"' in html
        assert 'class="outcome outcome-rejected" data-name="notes.txt"' in html
        assert "rejected: unsupported file type" in html
        assert f'data-job-id="{Job.objects.get().pk}"' in html  # the live progress box of the batch's job


@pytest.mark.django_db
def test_an_upload_with_no_acceptable_file_creates_no_job(listing: Any) -> None:
    client = _owner(listing)
    response = _web_upload(client, listing, ("notes.txt", b"hi"), ("empty.jpg", b""))
    assert response.status_code == 303
    assert Job.objects.count() == 0 and Photo.objects.count() == 0
    html = client.get(response["Location"]).content.decode()
    assert 'data-name="notes.txt"' in html and 'data-name="empty.jpg"' in html
    assert 'id="no-job"' in html and "job-progress" not in html.split('id="extract-job-template"')[0]


@pytest.mark.django_db
def test_posting_the_same_files_again_creates_no_empty_job(listing: Any) -> None:
    client = _owner(listing)
    _web_upload(client, listing, ("a.jpg", images.jpeg(1)))
    again = _web_upload(client, listing, ("a.jpg", images.jpeg(1)))  # what F5 on a POST response did
    assert Job.objects.count() == 1 and Photo.objects.count() == 1
    html = client.get(again["Location"]).content.decode()
    assert "already in this listing" in html and 'id="no-job"' in html


@pytest.mark.django_db
def test_get_on_the_upload_url_sends_the_browser_to_the_listing(listing: Any) -> None:
    response = _owner(listing).get(reverse("listings:upload", args=[listing.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("listings:detail", args=[listing.pk])


@pytest.mark.django_db
def test_get_on_a_job_cancel_url_shows_the_job_and_cancels_nothing(listing: Any) -> None:
    client = _owner(listing)
    _web_upload(client, listing, ("a.jpg", images.jpeg(1)))
    job = Job.objects.get()
    response = client.get(reverse("jobs:cancel", args=[job.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert Job.objects.filter(cancel_requested=True).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"), [("other_realtor", 404), ("moderator", 200), ("admin_user", 200)]
)
def test_the_result_page_opens_to_the_listing_owner_moderators_and_admins_only(
    request: pytest.FixtureRequest, listing: Any, role: str, status: int
) -> None:
    url = _web_upload(_owner(listing), listing, ("a.jpg", images.jpeg(1)))["Location"]
    client = Client()
    client.force_login(request.getfixturevalue(role))
    assert client.get(url).status_code == status


@pytest.mark.django_db
def test_a_result_url_with_another_listings_id_is_not_found(listing: Any) -> None:
    client = _owner(listing)
    _web_upload(client, listing, ("a.jpg", images.jpeg(1)))
    own_other = ListingFactory(owner=listing.owner)
    batch = UploadBatch.objects.get()
    assert client.get(reverse("listings:upload-result", args=[own_other.pk, batch.pk])).status_code == 404


@pytest.mark.django_db
def test_the_result_page_links_the_extract_job_and_says_when_the_photos_become_searchable(
    listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_send_replace(monkeypatch, Job.Kind.EXTRACT, lambda job_id: None)
    client = _owner(listing)
    url = _web_upload(client, listing, ("a.jpg", images.jpeg(1)))["Location"]
    assert "they become searchable once extraction finishes" in client.get(url).content.decode()
    ingest_job = Job.objects.get(kind=Job.Kind.INGEST)
    pipeline.ingest_inline(ingest_job.pk)
    extract = Job.objects.get(kind=Job.Kind.EXTRACT)
    html = client.get(url).content.decode()
    assert 'data-state="extracting"' in html and "Searchable once extraction finishes." in html
    assert f'href="{reverse("jobs:detail", args=[extract.pk])}"' in html
    jobs.job_finish(extract.pk)
    html = client.get(url).content.decode()
    assert 'data-state="now"' in html and "Searchable now" in html


@pytest.mark.django_db
def test_the_ingest_job_counts_every_photo_of_the_batch_copies_included(listing: Any) -> None:
    data = images.jpeg(1)
    first = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=[upload("a.jpg", data)])
    assert first.job is not None
    pipeline.ingest_inline(first.job.pk)
    other = ListingFactory(owner=listing.owner)
    items = [upload("copy.jpg", data), upload("b.jpg", images.jpeg(2))]
    second = ingest.photo_ingest(listing=other, uploader=listing.owner, items=items, enqueue=False)
    assert second.job is not None
    assert (second.job.done, second.job.total) == (1, 2)  # the byte copy is final at once
    job = pipeline.ingest_inline(second.job.pk)
    assert (job.status, job.done, job.total) == (Job.Status.SUCCEEDED, 2, 2)


@pytest.mark.django_db
def test_the_result_page_says_when_the_queue_was_down_at_upload_time(
    listing: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    def down(job_id: int) -> None:
        raise ConnectionError("Connection refused")

    client = _owner(listing)
    task_send_replace(monkeypatch, Job.Kind.INGEST, down)
    with django_capture_on_commit_callbacks(execute=True):
        down_url = _web_upload(client, listing, ("a.jpg", images.jpeg(1)))["Location"]
    task_send_replace(monkeypatch, Job.Kind.INGEST, lambda job_id: None)
    with django_capture_on_commit_callbacks(execute=True):
        up_url = _web_upload(client, listing, ("b.jpg", images.jpeg(2)))["Location"]
    assert 'id="queue-unavailable"' in client.get(down_url).content.decode()
    assert 'id="queue-unavailable"' not in client.get(up_url).content.decode()
