"""Decode an uploaded image safely and produce its normalised, metadata-free derivatives."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from search.ml.images.hashing import phash, pixel_sha256

# What Pillow's parsers raise on hostile bytes (a truncated GIF gives IndexError, a short header
# struct.error): all of it means "this file is broken", never a server error.
_PARSE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    struct.error,
)

# Truncated files must fail loudly instead of decoding into grey padding.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Formats we accept, by what Pillow detects from the content (never from the name).
ALLOWED_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "GIF": (".gif",),
}
ALLOWED_EXTENSIONS = tuple(ext for exts in ALLOWED_FORMATS.values() for ext in exts)
# Only these Pillow plugins ever parse an upload: the other decoders (PSD, ICNS, FLI, ...) never see one.
DECODER_FORMATS = tuple(ALLOWED_FORMATS)
NORMALISED_MAX_SIDE = 2048
THUMB_MAX_SIDE = 320


class ImageRejected(ValueError):
    """The file is not an acceptable image; the message is shown to the uploader."""


@dataclass(frozen=True)
class ImageLimits:
    """Limits checked from the header before any pixel is decoded."""

    max_pixels: int = 50_000_000
    max_frames: int = 100
    max_bytes: int = 25 * 1024 * 1024
    min_side: int = 16


@dataclass(frozen=True)
class Probe:
    """What the header says about a file."""

    format: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class Normalised:
    """An upright RGB picture, its stored JPEG and thumbnail (empty when not asked for), and its hashes."""

    image: Image.Image
    width: int
    height: int
    jpeg: bytes
    thumbnail: bytes
    sha256_pixels: str
    phash: int


def check_extension(name: str) -> str:
    """Return the lower-case extension of name or reject names outside the allow-list."""
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_EXTENSIONS:
        allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
        shown = suffix or "no extension"
        raise ImageRejected(f"unsupported file type ({shown}); allowed: {allowed}")
    return suffix


def probe(path: Path, name: str, limits: ImageLimits) -> Probe:
    """Read only the header: format allow-list, extension match, size and frame limits."""
    size = path.stat().st_size
    if size == 0:
        raise ImageRejected("empty file")
    if size > limits.max_bytes:
        raise ImageRejected(f"file too large ({size} bytes; limit {limits.max_bytes})")
    suffix = check_extension(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=DECODER_FORMATS) as img:
                fmt = str(img.format)
                width, height = img.size
                frames = int(getattr(img, "n_frames", 1))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        accepted = ", ".join(DECODER_FORMATS)
        raise ImageRejected(f"not an image in an accepted format (content is not {accepted})") from exc
    except _PARSE_ERRORS as exc:
        raise ImageRejected(f"unreadable image header ({exc or type(exc).__name__})") from exc
    return _check_probe(Probe(fmt, width, height, frames), suffix, limits)


def _check_probe(found: Probe, suffix: str, limits: ImageLimits) -> Probe:
    if found.format not in ALLOWED_FORMATS:
        raise ImageRejected(f"image format {found.format} is not accepted")
    if suffix not in ALLOWED_FORMATS[found.format]:
        raise ImageRejected(f"file extension {suffix} does not match its content ({found.format})")
    if found.width * found.height > limits.max_pixels:
        raise ImageRejected(
            f"image too large ({found.width}x{found.height} pixels; limit {limits.max_pixels} pixels)"
        )
    if min(found.width, found.height) < limits.min_side:
        raise ImageRejected(f"image too small ({found.width}x{found.height}; minimum side {limits.min_side})")
    if found.frames > limits.max_frames:
        raise ImageRejected(f"too many frames ({found.frames}; limit {limits.max_frames})")
    return found


def decode(path: Path, name: str, limits: ImageLimits) -> Image.Image:
    """Fully decode the first frame, apply EXIF orientation and convert to RGB."""
    probe(path, name, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=DECODER_FORMATS) as img:
                img.seek(0)
                img.load()
                upright = ImageOps.exif_transpose(img)
                return _to_rgb(upright)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image has too many pixels ({exc})") from exc
    except _PARSE_ERRORS as exc:
        raise ImageRejected(f"corrupt or truncated image ({exc or type(exc).__name__})") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    # Transparent areas become white, which is how listing pages show them.
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return img.point(lambda v: v / 256).convert("L").convert("RGB")
    return img.convert("RGB")


def _jpeg_bytes(img: Image.Image, max_side: int, quality: int) -> bytes:
    copy = img.copy()
    copy.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A fresh RGB image carries no EXIF/XMP/ICC: nothing private leaves through derivatives.
    copy.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def normalise(
    path: Path, name: str, limits: ImageLimits | None = None, *, derivatives: bool = True
) -> Normalised:
    """Decode, orient and strip a photo; return its derivatives and pixel hash.

    derivatives=False leaves jpeg and thumbnail empty: a search query is never stored, and encoding two
    JPEGs was a third of its decoding time.
    """
    img = decode(path, name, limits or ImageLimits())
    clean = Image.frombytes("RGB", img.size, img.tobytes())
    return Normalised(
        image=clean,
        width=clean.width,
        height=clean.height,
        jpeg=_jpeg_bytes(clean, NORMALISED_MAX_SIDE, 90) if derivatives else b"",
        thumbnail=_jpeg_bytes(clean, THUMB_MAX_SIDE, 82) if derivatives else b"",
        sha256_pixels=pixel_sha256(clean),
        phash=phash(clean),
    )
