"""Edited copies for the built-in encoder evaluation: the edits re-posted listing photos typically carry.

Each edit takes an RGB image and a seeded random.Random and returns a new RGB image; the randomness picks
positions, signs, colours and texts, so the same seed always gives the same copy.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]

_TEXTS = (
    "(c) Sunrise Realty 2024",
    "DREAM HOMES +1 555 0142",
    "www.best-flats.example",
    "SOLD by Oak & Stone",
)


def crop20(img: Image.Image, rng: random.Random) -> Image.Image:
    """Keep a random 80 % x 80 % window (64 % of the pixels)."""
    w, h = img.size
    cw, ch = max(1, round(w * 0.8)), max(1, round(h * 0.8))
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((left, top, left + cw, top + ch))


def mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    """Horizontal flip."""
    return ImageOps.mirror(img)


def jpeg30(img: Image.Image, rng: random.Random) -> Image.Image:
    """Re-encode as a quality-30 JPEG (heavy block artefacts)."""
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=30)
    out.seek(0)
    with Image.open(out) as decoded:
        return decoded.convert("RGB")


def letterbox(img: Image.Image, rng: random.Random) -> Image.Image:
    """Pad to a square or a 16:9 frame with black, white or grey bars."""
    w, h = img.size
    colour = rng.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128)])
    side = max(w, h)
    target = (side, side) if rng.random() < 0.5 else (max(w, round(h * 16 / 9)), max(h, round(w * 9 / 16)))
    if target == (w, h):  # already that shape: pad by a fifth instead so the edit is never a no-op
        target = (w + max(1, w // 5), h + max(1, h // 5))
    canvas = Image.new("RGB", target, colour)
    canvas.paste(img, ((target[0] - w) // 2, (target[1] - h) // 2))
    return canvas


def brightness(img: Image.Image, rng: random.Random) -> Image.Image:
    """Darker (x0.65) or lighter (x1.4)."""
    return ImageEnhance.Brightness(img).enhance(rng.choice((0.65, 1.4)))


def rotate4(img: Image.Image, rng: random.Random) -> Image.Image:
    """Rotate by +-4 degrees about the centre, same frame, black corners (a straightened photo)."""
    angle = 4.0 if rng.random() < 0.5 else -4.0
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)


def text(img: Image.Image, rng: random.Random) -> Image.Image:
    """Semi-transparent agency text across 50-80 % of the width."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    words = rng.choice(_TEXTS)
    probe = draw.textbbox((0, 0), words, font=ImageFont.load_default(size=100))
    size = max(8, round(100 * base.width * rng.uniform(0.5, 0.8) / max(1, probe[2] - probe[0])))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = draw.textbbox((0, 0), words, font=font)
    x = rng.randint(0, max(0, base.width - round(right - left)))
    y = rng.randint(0, max(0, base.height - round(bottom - top)))
    alpha = rng.randint(110, 200)
    colour = rng.choice([(255, 255, 255, alpha), (0, 0, 0, alpha), (230, 30, 30, alpha)])
    draw.text((x - left, y - top), words, font=font, fill=colour, stroke_width=max(1, size // 20))
    return Image.alpha_composite(base, layer).convert("RGB")


EDITS: dict[str, Edit] = {
    "crop20": crop20,
    "mirror": mirror,
    "jpeg30": jpeg30,
    "letterbox": letterbox,
    "brightness": brightness,
    "rotate4": rotate4,
    "text": text,
}


def apply_edit(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """The edited copy of an image for one edit kind (KeyError names the kinds)."""
    if kind not in EDITS:
        raise KeyError(f"unknown edit {kind!r}; choose from {', '.join(EDITS)}")
    return EDITS[kind](img.convert("RGB"), rng)
