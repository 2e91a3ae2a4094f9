"""Exact-copy keys and perceptual hashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from search.ml.images.hashing import dhash, hamming, phash, pixel_sha256, to_signed64, to_unsigned64


def _scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    return img


def _reencode(img: Image.Image, fmt: str, **kwargs: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def test_pixel_sha256_is_equal_for_same_pixels_in_another_container() -> None:
    img = _scene(0)
    assert pixel_sha256(img) == pixel_sha256(_reencode(img, "PNG"))
    assert pixel_sha256(img) == pixel_sha256(img.convert("RGBA").convert("RGB"))


def test_pixel_sha256_changes_after_one_pixel_change() -> None:
    img = _scene(0)
    changed = img.copy()
    r, g, b = changed.getpixel((10, 10))  # type: ignore[misc]
    changed.putpixel((10, 10), ((r + 1) % 256, g, b))
    assert pixel_sha256(img) != pixel_sha256(changed)


def test_pixel_sha256_includes_the_size() -> None:
    flat = Image.new("RGB", (4, 6), (9, 9, 9))
    assert pixel_sha256(flat) != pixel_sha256(Image.new("RGB", (6, 4), (9, 9, 9)))


@pytest.mark.parametrize("fn", [phash, dhash])
def test_hash_is_close_after_jpeg_reencode_and_resize(fn) -> None:
    img = _scene(1)
    copy = _reencode(img.resize((200, 150)), "JPEG", quality=40)
    assert hamming(fn(img), fn(copy)) <= 6


@pytest.mark.parametrize("fn", [phash, dhash])
def test_hash_is_far_for_unrelated_images(fn) -> None:
    distances = [hamming(fn(_scene(0)), fn(_scene(seed))) for seed in range(1, 6)]
    assert min(distances) >= 12


def test_hashes_are_64_bit_and_hamming_ignores_sign_form() -> None:
    h = phash(_scene(2))
    assert 0 <= h < 2**64
    signed = to_signed64(h)
    assert -(2**63) <= signed < 2**63
    assert to_unsigned64(signed) == h
    assert hamming(signed, h) == 0
    assert hamming(0, 2**64 - 1) == 64
