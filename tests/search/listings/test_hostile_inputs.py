"""Polyglots, SVG, mismatched names and awkward modes; how stored derivatives are served.

Every input ends as a correct upright RGB picture or a clean rejection; served images always carry an
image content type and nosniff, and never EXIF, GPS or XMP.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from PIL import Image, ImageCms

from search import pipeline
from search.listings import ingest
from search.models import Photo
from tests import images
from tests.conftest import upload
from tests.search.listings.test_uploads import _zip
from training import artifacts
from training import services as training_services

pytestmark = pytest.mark.django_db

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<html><script>alert(document.cookie)</script></html>"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,22.0N" '
    b'exif:GPSLongitude="4,53.0E" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Make="SecretCam"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _ingest_one(listing: Any, name: str, data: bytes) -> tuple[ingest.Outcome, Photo | None]:
    result = ingest.photo_ingest(
        listing=listing, uploader=listing.owner, items=[upload(name, data)], enqueue=False
    )
    if result.job is not None and result.job.total:
        pipeline.ingest_inline(result.job.pk)
    photo = Photo.objects.filter(pk=result.outcomes[0].photo_id).first()
    return result.outcomes[0], photo


def _stored(photo: Photo) -> Image.Image:
    with Image.open(Path(settings.MEDIA_ROOT) / photo.image_path) as img:
        assert img.format == "JPEG" and img.mode == "RGB"
        return img.copy()


def _mean_error(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


@pytest.mark.parametrize(
    ("name", "tail"),
    [("jpeg-zip.jpg", "zip"), ("jpeg-html.jpg", "html"), ("gifar.gif", "zip"), ("png-html.png", "html")],
)
def test_polyglots_are_stored_as_a_clean_picture_without_their_payload(
    listing: Any, name: str, tail: str
) -> None:
    pic = images.picture(1)
    fmt = {".jpg": "JPEG", ".gif": "GIF", ".png": "PNG"}[Path(name).suffix]
    payload = _zip(Path(settings.DATA_DIR).parent, [("Evil.class", b"\xca\xfe\xba\xbe")]).read_bytes()
    data = images.encode(pic, fmt) + (payload if tail == "zip" else HTML)
    _, photo = _ingest_one(listing, name, data)
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    stored = (Path(settings.MEDIA_ROOT) / photo.image_path).read_bytes()
    assert b"PK\x03\x04" not in stored and b"<script" not in stored
    assert _mean_error(_stored(photo), pic) < 30  # GIF's palette costs some accuracy, nothing more


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("drawing.svg", SVG, "unsupported file type"),
        ("drawing.png", SVG, "not an image"),
        ("page.jpg", HTML, "not an image"),
        ("png-named.jpg", images.png(2), "does not match its content"),
        ("jpeg-named.webp", images.jpeg(3), "does not match its content"),
        ("gif-named.png", images.encode(images.picture(4), "GIF"), "does not match its content"),
        ("photo.JPG.exe", images.jpeg(5), "unsupported file type"),
        ("bitmap.jpg", images.encode(images.picture(6), "BMP"), "not an image"),
    ],
)
def test_svg_and_name_content_mismatches_are_rejected_with_a_reason(
    listing: Any, name: str, data: bytes, reason: str
) -> None:
    outcome, photo = _ingest_one(listing, name, data)
    assert outcome.status == "rejected" and reason in outcome.detail
    assert photo is None


def test_cmyk_jpeg_becomes_the_right_rgb_picture(listing: Any) -> None:
    pic = images.picture(7)
    _, photo = _ingest_one(listing, "cmyk.jpg", images.encode(pic.convert("CMYK"), "JPEG", quality=95))
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    # Two lossy generations of a noisy picture cost ~9 levels; misread CMYK (inverted ink) costs ~100.
    assert _mean_error(_stored(photo), pic) < 15


def test_sixteen_bit_png_becomes_the_right_grey_rgb_picture(listing: Any) -> None:
    grey = np.asarray(images.picture(8).convert("L"), dtype=np.uint16)
    _, photo = _ingest_one(listing, "deep.png", images.encode(Image.fromarray(grey * 257), "PNG"))
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    expected = Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    assert _mean_error(_stored(photo), expected) < 4


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA"])
def test_transparent_pixels_become_white(listing: Any, mode: str) -> None:
    img = Image.new("RGBA", (64, 64), (200, 30, 30, 255))
    img.paste((0, 0, 0, 0), (0, 0, 32, 64))  # left half fully transparent (black underneath)
    if mode == "P":
        data = images.encode(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG")
    else:
        data = images.encode(img.convert(mode), "PNG")
    _, photo = _ingest_one(listing, f"alpha-{mode}.png", data)
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    pixels = np.asarray(_stored(photo), dtype=np.int16)
    assert np.abs(pixels[:, :28] - 255).max() < 12  # white, not the hidden black
    assert pixels[:, 36:].mean() < 200  # the opaque half keeps its colour


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_store_their_first_frame(listing: Any, fmt: str) -> None:
    frames = [images.picture(10 + i) for i in range(3)]
    kwargs: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": 100}
    if fmt == "WEBP":
        kwargs["lossless"] = True
    _, photo = _ingest_one(listing, f"anim.{fmt.lower()}", images.encode(frames[0], fmt, **kwargs))
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    stored = _stored(photo)
    assert _mean_error(stored, frames[0]) < _mean_error(stored, frames[1]) / 3


# --- serving ----------------------------------------------------------------------------------------


def _jpeg_with_everything() -> bytes:
    """EXIF (camera make, GPS), XMP with GPS, an ICC profile and a comment."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return images.encode(
        images.picture(20),
        "JPEG",
        exif=exif.tobytes(),
        xmp=XMP,
        icc_profile=icc,
        comment=b"taken at 52.3676 N 4.9041 E",
    )


def _app_segments(jpeg: bytes) -> list[int]:
    """Marker bytes of every APPn/COM segment before the image data."""
    found, pos = [], 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: headers are over
            break
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            found.append(marker)
        pos += 2 + length
    return found


def test_served_derivatives_carry_no_exif_gps_or_xmp(listing: Any, client: Client) -> None:
    source = _jpeg_with_everything()
    with Image.open(io.BytesIO(source)) as check:  # the upload really carries all of it
        assert check.getexif().get_ifd(0x8825) and "xmp" in check.info and "icc_profile" in check.info
        assert "comment" in check.info
    _, photo = _ingest_one(listing, "private.jpg", source)
    assert photo is not None and photo.status == Photo.Status.PROCESSED
    client.force_login(listing.owner)
    for variant in ("image", "thumb"):
        response = client.get(reverse("listings:photo-file", args=[photo.pk, variant]))
        body = b"".join(response.streaming_content)
        assert _app_segments(body) == [0xE0], variant  # JFIF only: no EXIF/XMP (APP1), ICC, comment
        for secret in (b"SecretCam", b"GPS", b"xmpmeta", b"52.3676", b"Exif"):
            assert secret not in body, (variant, secret)
        with Image.open(io.BytesIO(body)) as served:
            assert len(served.getexif()) == 0 and "xmp" not in served.info


def _image_routes() -> set[str]:
    """Names of URL patterns whose path ends in an image extension (they serve picture files)."""

    def walk(patterns: list[Any], prefix: str, namespace: str = "") -> set[str]:
        names: set[str] = set()
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                names |= walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern) and re.search(
                r"\.(jpe?g|png|gif|webp)\$?$", str(entry.pattern)
            ):
                names.add(f"{namespace}{entry.name}")
        return names

    return walk(get_resolver().url_patterns, "")


def _sample_url(folder: Path) -> str:
    """A training run with one recorded sample grid; the URL of that grid."""
    folder.mkdir()
    for i in range(6):
        (folder / f"room{i}.jpg").write_bytes(images.jpeg(100 + i, (64, 48)))
    run = training_services.run_start(
        preset="tiny-test", data=training_services.data_choice_folder(folder), enqueue=False
    )
    assert run.job_id is not None
    png = artifacts.grid_png(np.zeros((4, 8, 8, 3), dtype=np.uint8))
    training_services.run_record(run.pk, run.job_id, training_services.Progress(4, {}, [], (4, 8, 1.0, png)))
    return reverse("training:sample", args=[run.pk, 4])


def test_served_media_always_have_an_image_type_and_nosniff(
    listing: Any, admin_user: Any, tmp_path: Path
) -> None:
    _, photo = _ingest_one(listing, "a.jpg", images.jpeg(21))
    assert photo is not None
    client = Client()
    client.force_login(admin_user)
    urls = {
        "listings:photo-file": [
            reverse("listings:photo-file", args=[photo.pk, "image"]),
            reverse("listings:photo-file", args=[photo.pk, "thumb"]),
        ],
        "training:sample": [_sample_url(tmp_path / "photos")],
    }
    assert set(urls) == _image_routes(), "a new URL serves images: add it here"
    for url in (u for group in urls.values() for u in group):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] in ("image/jpeg", "image/png"), url
        assert response["X-Content-Type-Options"] == "nosniff", url
