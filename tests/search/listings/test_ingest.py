"""photo_ingest / photo_process: outcomes, duplicates, rejection, metadata stripping, no half-writes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from PIL import Image

from search import pipeline
from search.listings import ingest
from search.models import Job, Photo
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory

pytestmark = pytest.mark.django_db


def _ingest(listing: Any, *items: tuple[str, io.BytesIO], run: bool = True) -> ingest.IngestResult:
    result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=list(items), enqueue=False)
    if run and result.job is not None and result.job.total:
        pipeline.ingest_inline(result.job.pk)
    return result


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_accepted_photo_is_processed_with_hashes_and_derivatives(listing: Any) -> None:
    result = _ingest(listing, upload("kitchen.jpg", images.jpeg(1)))
    assert [o.status for o in result.outcomes] == ["accepted"]
    photo = Photo.objects.get()
    assert photo.status == Photo.Status.PROCESSED
    assert len(photo.sha256_pixels) == 64 and len(photo.sha256_bytes) == 64 and len(photo.phash) == 16
    assert (photo.width, photo.height) == (320, 240)
    assert (Path(settings.MEDIA_ROOT) / photo.image_path).is_file()
    assert (Path(settings.MEDIA_ROOT) / photo.thumb_path).is_file()
    assert (Path(settings.PRIVATE_ROOT) / photo.original_path).is_file()
    job = Job.objects.get()
    assert (job.status, job.done, job.total) == (Job.Status.SUCCEEDED, 1, 1)


def test_byte_identical_upload_is_linked_not_stored_twice(listing: Any) -> None:
    data = images.jpeg(2)
    _ingest(listing, upload("a.jpg", data))
    other = ListingFactory()
    result = _ingest(other, upload("copy.jpg", data))
    assert result.outcomes[0].status == "duplicate"
    assert "exact duplicate of photo" in result.outcomes[0].detail
    copy = Photo.objects.get(listing=other)
    original = Photo.objects.get(listing=listing)
    assert copy.duplicate_of == original and copy.status == Photo.Status.DUPLICATE
    assert copy.image_path == original.image_path
    assert len(_files_under(Path(settings.MEDIA_ROOT) / "photos")) == 1


def test_same_pixels_in_another_container_become_a_duplicate(listing: Any) -> None:
    pic = images.picture(3)
    _ingest(
        listing,
        upload("a.png", images.encode(pic, "PNG")),
        upload("b.webp", images.encode(pic, "WEBP", lossless=True)),
    )
    photos = {p.original_name: p for p in Photo.objects.all()}
    assert photos["a.png"].status == Photo.Status.PROCESSED
    assert photos["b.webp"].status == Photo.Status.DUPLICATE
    assert photos["b.webp"].duplicate_of == photos["a.png"]
    assert photos["b.webp"].original_path == ""  # the copy's upload is not kept
    assert len(_files_under(Path(settings.MEDIA_ROOT) / "photos")) == 1


def test_reimporting_the_same_file_into_the_same_listing_adds_nothing(listing: Any) -> None:
    data = images.jpeg(4)
    _ingest(listing, upload("a.jpg", data))
    result = _ingest(listing, upload("a.jpg", data))
    assert result.outcomes[0].status == "duplicate"
    assert "already in this listing" in result.outcomes[0].detail
    assert Photo.objects.count() == 1


def test_exif_orientation_applied_and_metadata_stripped(listing: Any) -> None:
    _ingest(listing, upload("rot.jpg", images.jpeg_with_exif(5, orientation=6)))
    photo = Photo.objects.get()
    assert (photo.width, photo.height) == (200, 320)  # rotated upright
    for rel in (photo.image_path, photo.thumb_path):
        raw = (Path(settings.MEDIA_ROOT) / rel).read_bytes()
        with Image.open(io.BytesIO(raw)) as served:
            assert len(served.getexif()) == 0
            assert "xmp" not in served.info and "exif" not in served.info
        assert b"SecretCam" not in raw


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.txt", b"hello", "unsupported file type"),
        ("fake.jpg", b"<html><script>alert(1)</script></html>", "not an image"),
        ("vector.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "not an image"),
        ("wrong.png", images.jpeg(6), "does not match its content"),
        ("empty.jpg", b"", "empty file"),
        ("anim.bmp", images.encode(images.picture(7), "BMP"), "unsupported file type"),
        ("tiny.png", images.encode(images.picture(8, (4, 4)), "PNG"), "too small"),
    ],
)
def test_bad_files_are_rejected_at_upload_with_a_reason(
    listing: Any, name: str, data: bytes, reason: str
) -> None:
    result = _ingest(listing, upload(name, data))
    assert result.outcomes[0].status == "rejected"
    assert reason in result.outcomes[0].detail
    assert Photo.objects.count() == 0
    assert _files_under(Path(settings.PRIVATE_ROOT)) == []


def test_truncated_jpeg_is_rejected_during_processing_and_its_original_removed(listing: Any) -> None:
    data = images.jpeg(9, size=(640, 480))
    result = _ingest(listing, upload("cut.jpg", data[: len(data) // 2]))
    assert result.outcomes[0].status == "accepted"  # the header is fine
    photo = Photo.objects.get()
    assert photo.status == Photo.Status.REJECTED
    assert "truncated" in photo.reject_reason or "corrupt" in photo.reject_reason
    assert _files_under(Path(settings.PRIVATE_ROOT)) == []
    assert Job.objects.get().status == Job.Status.SUCCEEDED


def test_pixel_bomb_is_rejected_from_its_header(listing: Any, settings: Any) -> None:
    settings.FLATSITE_MAX_PIXELS = 1_000_000
    bomb = images.encode(Image.new("RGB", (4000, 4000)), "PNG")
    result = _ingest(listing, upload("bomb.png", bomb))
    assert result.outcomes[0].status == "rejected"
    assert "too large" in result.outcomes[0].detail or "too many pixels" in result.outcomes[0].detail


def test_frame_bomb_gif_is_rejected(listing: Any) -> None:
    frames = [images.picture(i, (32, 32)) for i in range(120)]
    data = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result = _ingest(listing, upload("anim.gif", data))
    assert result.outcomes[0].status == "rejected"
    assert "too many frames" in result.outcomes[0].detail


def test_processing_a_photo_twice_does_nothing_the_second_time(listing: Any) -> None:
    _ingest(listing, upload("a.jpg", images.jpeg(10)), run=False)
    photo = Photo.objects.get()
    assert ingest.photo_process(photo.pk) is not None
    assert ingest.photo_process(photo.pk) is None
    assert Photo.objects.get().attempts == 1


def test_photo_failing_repeatedly_is_quarantined(listing: Any, settings: Any) -> None:
    _ingest(listing, upload("a.jpg", images.jpeg(11)), run=False)
    photo = Photo.objects.get()
    Photo.objects.filter(pk=photo.pk).update(attempts=settings.FLATSITE_JOB_MAX_ATTEMPTS)
    ingest.photo_process(photo.pk)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.REJECTED
    limit = settings.FLATSITE_JOB_MAX_ATTEMPTS
    assert photo.reject_reason.startswith(f"quarantined after {limit} attempts: ")
    assert photo.attempts == limit  # not decoded a fourth time


def test_quarantining_one_photo_leaves_its_batch_neighbours_alone(listing: Any, settings: Any) -> None:
    result = _ingest(listing, upload("a.jpg", images.jpeg(12)), upload("b.jpg", images.jpeg(13)), run=False)
    poison = Photo.objects.get(original_name="a.jpg")
    Photo.objects.filter(pk=poison.pk).update(attempts=settings.FLATSITE_JOB_MAX_ATTEMPTS)
    assert result.job is not None
    job = pipeline.ingest_inline(result.job.pk)
    assert job.status == Job.Status.SUCCEEDED and job.done == 2
    statuses = dict(Photo.objects.values_list("original_name", "status"))
    assert statuses == {"a.jpg": Photo.Status.REJECTED, "b.jpg": Photo.Status.PROCESSED}


def test_failed_registration_leaves_no_rows_and_no_files(
    listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = ingest._register_one

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "_register_one", failing)
    with pytest.raises(RuntimeError):
        _ingest(listing, upload("a.jpg", images.jpeg(12)), upload("b.jpg", images.jpeg(13)))
    assert Photo.objects.count() == 0 and Job.objects.count() == 0
    assert _files_under(Path(settings.PRIVATE_ROOT)) == []
    assert _files_under(Path(settings.STAGING_ROOT)) == []
