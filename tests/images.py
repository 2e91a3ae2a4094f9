"""Generate test images in memory: textured pictures, EXIF-tagged JPEGs, bombs and fakes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def picture(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A structured RGB picture (rectangles and ellipses) that differs per seed."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, max(1, size[0] - 20))), int(rng.integers(0, max(1, size[1] - 20)))
        x1, y1 = x0 + int(rng.integers(6, 90)), y0 + int(rng.integers(6, 70))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        outline = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(
            [x0, y0, x1, y1], fill=colour, outline=outline
        )
    # Fine texture gives local features something to hold on to, as real photos do.
    noise = rng.integers(-40, 40, (size[1], size[0], 1), dtype=np.int16)
    textured = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(textured, "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    """Encode an image to bytes."""
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def jpeg(seed: int = 0, size: tuple[int, int] = (320, 240), quality: int = 90) -> bytes:
    """A JPEG of picture(seed)."""
    return encode(picture(seed, size), "JPEG", quality=quality)


def png(seed: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    """A PNG of picture(seed)."""
    return encode(picture(seed, size), "PNG")


def jpeg_with_exif(seed: int = 0, orientation: int = 6, gps: bool = True) -> bytes:
    """A JPEG with an orientation tag, a camera make and (optionally) GPS data."""
    img = picture(seed, (320, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90)
