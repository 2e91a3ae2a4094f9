"""A deterministic corpus of malformed images: mutations of valid photos, lying headers and bombs.

Shared by tests/search/test_malformed_corpus.py (CI size) and bench/fuzz/fuzz_images.py (nightly size).
Sample i of a corpus depends only on (seed, i) and the base photos, so a failure is reproducible from
its index alone.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests import images

Rng = np.random.Generator


@dataclass(frozen=True)
class Sample:
    """One corpus file: the mutation that made it, the name it is uploaded under, and its bytes."""

    index: int
    kind: str
    name: str
    data: bytes
    source: str  # the base photo's label, or "crafted"


@dataclass(frozen=True)
class Base:
    """A valid photo that mutations start from."""

    label: str
    ext: str
    data: bytes


def generated_bases() -> list[Base]:
    """Valid generated photos in every accepted container and the awkward modes."""
    pic = images.picture(1, (160, 120))
    grey16 = Image.fromarray(np.asarray(pic.convert("L"), dtype=np.uint16) * 257)
    rgba = pic.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(pic.size))
    palette = pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 3
    frames = [images.picture(s, (64, 48)).convert("P") for s in range(3)]
    return [
        Base("jpeg", ".jpg", images.encode(pic, "JPEG", quality=85)),
        Base("jpeg-progressive", ".jpg", images.encode(pic, "JPEG", quality=80, progressive=True)),
        Base("jpeg-exif", ".jpg", images.jpeg_with_exif(2)),
        Base("jpeg-cmyk", ".jpg", images.encode(pic.convert("CMYK"), "JPEG")),
        Base("png", ".png", images.encode(pic, "PNG")),
        Base("png-rgba", ".png", images.encode(rgba, "PNG")),
        Base("png-palette", ".png", images.encode(palette, "PNG")),
        Base("png-16bit", ".png", images.encode(grey16, "PNG")),
        Base("webp", ".webp", images.encode(pic, "WEBP", quality=80)),
        Base("webp-lossless", ".webp", images.encode(pic, "WEBP", lossless=True)),
        Base("gif", ".gif", images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:])),
    ]


def real_bases(folder: Path | None, count: int, *, smallest: bool = False) -> list[Base]:
    """`count` real JPEGs of a shared-data folder (the smallest files, or spread over the names), or none."""
    if folder is None or count <= 0:
        return []
    paths = sorted(folder.glob("*.jpg"))
    if smallest:
        chosen = sorted(paths, key=lambda p: (p.stat().st_size, p.name))[:count]
    else:
        chosen = paths[:: max(1, len(paths) // count)][:count]
    return [Base(f"real:{p.name}", ".jpg", p.read_bytes()) for p in chosen]


# --- mutations of a valid photo ---------------------------------------------------------------------


def truncate(rng: Rng, data: bytes) -> bytes:
    """Cut the file in its header, its middle or just before its end."""
    where = rng.integers(4)
    if where == 0:
        cut = int(rng.integers(1, 64))
    elif where == 1:
        cut = int(rng.integers(64, min(2048, len(data) - 1)))
    elif where == 2:
        cut = int(rng.integers(len(data) // 4, len(data) - 1))
    else:
        cut = len(data) - int(rng.integers(1, 17))
    return data[:cut]


def bit_flip(rng: Rng, data: bytes) -> bytes:
    """Flip 1 to 32 bits, half the time all inside the first 2 KiB (headers, tables)."""
    out = bytearray(data)
    span = min(len(out), 2048) if rng.random() < 0.5 else len(out)
    for _ in range(int(rng.integers(1, 33))):
        pos = int(rng.integers(span))
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out)


def byte_shuffle(rng: Rng, data: bytes) -> bytes:
    """Swap, duplicate, delete or insert byte ranges."""
    out = bytearray(data)
    size = int(rng.integers(1, max(2, min(4096, len(out) // 4))))
    a, b = (int(v) for v in rng.integers(0, len(out) - size, 2))
    how = rng.integers(4)
    if how == 0:
        out[a : a + size], out[b : b + size] = out[b : b + size], out[a : a + size]
    elif how == 1:
        out[b:b] = out[a : a + size]
    elif how == 2:
        del out[a : a + size]
    else:
        out[a:a] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return bytes(out)


def wrong_dims(rng: Rng, data: bytes) -> bytes:
    """Rewrite the declared width/height to plausible but wrong values (PNG CRC kept valid)."""
    w, h = (int(v) for v in rng.choice([0, 1, 2, 17, 300, 1000, 1500], 2))
    return _set_dims(data, w, h)


def huge_dims(rng: Rng, data: bytes) -> bytes:
    """Declare enormous dimensions in the header of otherwise small data."""
    w, h = (int(v) for v in rng.choice([65_535, 60_000, 100_000, 2**31 - 1, 2**32 - 1], 2))
    return _set_dims(data, w, h)


def _set_dims(data: bytes, w: int, h: int) -> bytes:
    out = bytearray(data)
    if data.startswith(b"\x89PNG"):
        out[16:24] = struct.pack(">II", w, h)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif data.startswith(b"\xff\xd8"):
        sof = _jpeg_sof(data)
        if sof >= 0:
            out[sof + 5 : sof + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
    elif data.startswith(b"GIF"):
        out[6:10] = struct.pack("<HH", w & 0xFFFF, h & 0xFFFF)
    elif data.startswith(b"RIFF") and data[12:16] == b"VP8X":
        out[24:30] = ((w - 1) & 0xFFFFFF).to_bytes(3, "little") + ((h - 1) & 0xFFFFFF).to_bytes(3, "little")
    elif data.startswith(b"RIFF") and data[12:16] == b"VP8 ":
        out[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    elif data.startswith(b"RIFF") and data[12:16] == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        sizes = ((w - 1) & 0x3FFF) | (((h - 1) & 0x3FFF) << 14)
        out[21:25] = struct.pack("<I", (bits & ~0xFFFFFFF) | sizes)
    return bytes(out)


def _jpeg_sof(data: bytes) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        pos = data.find(marker)
        if pos >= 0:
            return pos
    return -1


def polyglot(rng: Rng, data: bytes) -> bytes:
    """A valid picture with a zip, HTML or a script appended (GIFAR-style)."""
    tail = [_zip_bytes(), b"<html><script>alert(document.cookie)</script></html>", b"#!/bin/sh\nrm -rf /\n"]
    return data + tail[int(rng.integers(len(tail)))]


@functools.cache
def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Main-Class: Evil\n")
        zf.writestr("Evil.class", b"\xca\xfe\xba\xbe" + b"\0" * 64)
    return buf.getvalue()


MUTATIONS: dict[str, Callable[[Rng, bytes], bytes]] = {
    "truncate": truncate,
    "bit_flip": bit_flip,
    "byte_shuffle": byte_shuffle,
    "wrong_dims": wrong_dims,
    "huge_dims": huge_dims,
    "polyglot": polyglot,
}


# --- files crafted from nothing ---------------------------------------------------------------------

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff\xe0", ".gif": b"GIF89a", ".webp": b"RIFF"}


def lying_magic(rng: Rng, bases: list[Base]) -> tuple[str, bytes]:
    """Right magic bytes for the name, something else entirely behind them."""
    ext = str(rng.choice(sorted(MAGIC)))
    bodies = [
        b"<html><body onload=alert(1)>x</body></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        _zip_bytes(),
        rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes(),
        bases[int(rng.integers(len(bases)))].data[8:],
    ]
    body = bodies[int(rng.integers(len(bodies)))]
    if ext == ".webp":
        return ext, MAGIC[ext] + struct.pack("<I", len(body) + 4) + b"WEBP" + body
    return ext, MAGIC[ext] + body


def content_mismatch(rng: Rng, bases: list[Base]) -> tuple[str, bytes]:
    """A valid picture uploaded under another format's extension (or a non-image one)."""
    base = bases[int(rng.integers(len(bases)))]
    others = [e for e in (".jpg", ".png", ".gif", ".webp", ".svg", ".html", ".bmp") if e != base.ext]
    return str(rng.choice(others)), base.data


def pixel_bomb(rng: Rng, bases: list[Base]) -> tuple[str, bytes]:
    """Pillow-style decompression bombs: tiny files declaring (and really holding) huge pictures."""
    which = int(rng.integers(4))
    if which == 0:
        return ".png", _png_bomb(int(rng.choice([7_500, 9_000])))
    if which == 1:
        return ".gif", _gif_screen_bomb()
    if which == 2:
        return ".webp", _webp_bomb()
    return ".jpg", _set_dims(bases[0].data, 65_500, 65_500)


def frame_bomb(rng: Rng, bases: list[Base]) -> tuple[str, bytes]:
    """Animated GIFs with far more frames than any photo has."""
    return ".gif", _gif_frames(int(rng.choice([101, 400, 2000])))


@functools.cache
def _png_bomb(side: int) -> bytes:
    # Grey, all zero: one filter byte plus `side` zeros per row compresses about 1000:1.
    row = b"\0" * (side + 1)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def _gif_screen_bomb() -> bytes:
    data = bytearray(images.encode(Image.new("P", (16, 16)), "GIF"))
    data[6:10] = struct.pack("<HH", 65_535, 65_535)  # logical screen: 4.3 G pixels
    return bytes(data)


@functools.cache
def _webp_bomb() -> bytes:
    # The largest lossless WebP there is (16384 x 16384) declared over a tiny bitstream.
    return _set_dims(images.encode(Image.new("L", (64, 64)), "WEBP", lossless=True), 16_384, 16_384)


@functools.cache
def _gif_frames(count: int) -> bytes:
    colours = [(255, 0, 0), (0, 0, 255)]  # alternating: the encoder merges identical neighbours
    frames = [Image.new("RGB", (16, 16), colours[i % 2]) for i in range(count)]
    return images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


CRAFTED: dict[str, Callable[[Rng, list[Base]], tuple[str, bytes]]] = {
    "lying_magic": lying_magic,
    "content_mismatch": content_mismatch,
    "pixel_bomb": pixel_bomb,
    "frame_bomb": frame_bomb,
}
KINDS = [*MUTATIONS, *CRAFTED]
# Mutations of photos make most of the corpus; crafted files recur often enough to be well covered.
_SCHEDULE = [*MUTATIONS, *MUTATIONS, "lying_magic", "content_mismatch", "pixel_bomb", "frame_bomb"]


def sample(index: int, bases: list[Base], seed: int = 0) -> Sample:
    """The index-th corpus file (depends only on seed, index and the bases)."""
    rng = np.random.default_rng([seed, index])
    kind = _SCHEDULE[index % len(_SCHEDULE)]
    if kind in MUTATIONS:
        base = bases[int(rng.integers(len(bases)))]
        return Sample(index, kind, f"m{index}{base.ext}", MUTATIONS[kind](rng, base.data), base.label)
    ext, data = CRAFTED[kind](rng, bases)
    return Sample(index, kind, f"c{index}{ext}", data, "crafted")


def corpus(count: int, bases: list[Base], seed: int = 0, start: int = 0) -> Iterator[Sample]:
    """Samples start .. start+count-1."""
    for index in range(start, start + count):
        yield sample(index, bases, seed)
