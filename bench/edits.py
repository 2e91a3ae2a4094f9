"""Edited-copy generators for the near-duplicate benchmark: every edit kind, at several strengths.

Each generator takes an RGB image and a seeded random.Random and returns a new RGB image. Strengths are
fixed per kind (crop10/15/25, jpeg30/60, rotate3/5, ...); the randomness picks positions, signs, colours
and texts so two runs with different seeds see different copies.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]

_AGENCY_TEXTS = (
    "(c) Sunrise Realty 2024",
    "DREAM HOMES +1 555 0142",
    "www.best-flats.example",
    "Premier Estates - Listing #48213",
    "SOLD by Oak & Stone",
)


def crop(fraction: float) -> Edit:
    """Keep a random (1-f)W x (1-f)H window: crop25 keeps 56 % of the pixels."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        cw, ch = round(w * (1 - fraction)), round(h * (1 - fraction))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return img.crop((left, top, left + cw, top + ch))

    return edit


def letterbox(img: Image.Image, rng: random.Random) -> Image.Image:
    """Pad to a square (or 16:9 for portrait-ish frames) with black, white or grey bars."""
    w, h = img.size
    colour = rng.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128)])
    side = max(w, h)
    target = (side, side) if rng.random() < 0.5 else (max(w, round(h * 16 / 9)), max(h, round(w * 9 / 16)))
    if target == (w, h):
        target = (w + w // 5, h + h // 5)
    canvas = Image.new("RGB", target, colour)
    canvas.paste(img, ((target[0] - w) // 2, (target[1] - h) // 2))
    return canvas


def border(img: Image.Image, rng: random.Random) -> Image.Image:
    """A uniform frame of 5-10 % on every side (another common padding)."""
    pad = round(max(img.size) * rng.uniform(0.05, 0.10))
    return ImageOps.expand(img, border=pad, fill=rng.choice([(0, 0, 0), (255, 255, 255)]))


def resize(scale: float) -> Edit:
    """Uniform downscale (bicubic)."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)

    return edit


def squash(img: Image.Image, rng: random.Random) -> Image.Image:
    """Non-uniform resize: one axis scaled 0.8-0.9 relative to the other (aspect ratio not kept)."""
    w, h = img.size
    factor = rng.uniform(0.8, 0.9)
    size = (round(w * factor), h) if rng.random() < 0.5 else (w, round(h * factor))
    return img.resize(size, Image.Resampling.BICUBIC)


def jpeg(quality: int) -> Edit:
    """Re-encode as JPEG at the given quality."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality)
        out.seek(0)
        with Image.open(out) as decoded:
            return decoded.convert("RGB")

    return edit


def enhance(kind: str, factors: tuple[float, float]) -> Edit:
    """Brightness / contrast / saturation change by one of two factors (darker-lighter etc.)."""
    enhancers = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast}
    enhancer = enhancers.get(kind, ImageEnhance.Color)

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        return enhancer(img).enhance(rng.choice(factors))

    return edit


def rotate(degrees: float) -> Edit:
    """Rotate by +-degrees about the centre, same frame size, black corners."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        angle = degrees if rng.random() < 0.5 else -degrees
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)

    return edit


def mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    """Horizontal flip."""
    return ImageOps.mirror(img)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_watermark(img: Image.Image, rng: random.Random) -> Image.Image:
    """Large semi-transparent agency text across the photo (50-80 % of the width)."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text = rng.choice(_AGENCY_TEXTS)
    probe = draw.textbbox((0, 0), text, font=_font(100))
    size = max(10, round(100 * base.width * rng.uniform(0.5, 0.8) / max(1, probe[2] - probe[0])))
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = rng.randint(0, max(0, base.width - (right - left)))
    y = rng.randint(0, max(0, base.height - (bottom - top)))
    alpha = rng.randint(110, 200)
    colour = rng.choice([(255, 255, 255, alpha), (0, 0, 0, alpha), (230, 30, 30, alpha)])
    draw.text((x - left, y - top), text, font=font, fill=colour, stroke_width=max(1, size // 20))
    return Image.alpha_composite(base, layer).convert("RGB")


def logo_watermark(img: Image.Image, rng: random.Random) -> Image.Image:
    """An opaque-ish agency logo (badge + initials) in a corner, 15-25 % of the width."""
    base = img.convert("RGBA")
    side = round(base.width * rng.uniform(0.15, 0.25))
    logo = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    fill = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255), rng.randint(170, 235))
    draw.ellipse(
        (0, 0, side - 1, side - 1), fill=fill, outline=(255, 255, 255, 230), width=max(1, side // 20)
    )
    draw.rectangle((side // 4, side // 2, 3 * side // 4, 3 * side // 4), fill=(255, 255, 255, 200))
    draw.text(
        (side // 4, side // 6), rng.choice(["RE", "OS", "PH", "DH"]), font=_font(side // 3), fill="white"
    )
    margin = round(base.width * 0.03)
    corners = [(margin, margin), (base.width - side - margin, margin)]
    corners += [
        (margin, base.height - side - margin),
        (base.width - side - margin, base.height - side - margin),
    ]
    base.alpha_composite(logo, rng.choice(corners))
    return base.convert("RGB")


def combo(*edits: Edit) -> Edit:
    """Apply several edits in order."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        for step in edits:
            img = step(img, rng)
        return img

    return edit


EDITS: dict[str, Edit] = {
    "crop10": crop(0.10),
    "crop15": crop(0.15),
    "crop25": crop(0.25),
    "letterbox": letterbox,
    "border": border,
    "resize50": resize(0.5),
    "resize25": resize(0.25),
    "squash": squash,
    "jpeg30": jpeg(30),
    "jpeg60": jpeg(60),
    "brightness": enhance("brightness", (0.65, 1.4)),
    "contrast": enhance("contrast", (0.6, 1.5)),
    "saturation": enhance("saturation", (0.2, 1.8)),
    "rotate3": rotate(3),
    "rotate5": rotate(5),
    "mirror": mirror,
    "text": text_watermark,
    "logo": logo_watermark,
    "crop15+text+jpeg60": combo(crop(0.15), text_watermark, jpeg(60)),
    "mirror+crop15": combo(mirror, crop(0.15)),
    "mirror+crop25+jpeg60": combo(mirror, crop(0.25), jpeg(60)),
    "letterbox+resize50+jpeg30": combo(letterbox, resize(0.5), jpeg(30)),
    "rotate3+crop10+logo": combo(rotate(3), crop(0.10), logo_watermark),
    "contrast+saturation+text": combo(
        enhance("contrast", (0.6, 1.5)), enhance("saturation", (0.2, 1.8)), text_watermark
    ),
}


def apply_edit(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """Return the edited copy of an RGB image for one edit kind."""
    return EDITS[kind](img.convert("RGB"), rng)
