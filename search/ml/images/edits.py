"""Edited copies: the edits re-posted listing photos typically carry, shared by the app and bench/.

Each edit takes an RGB image and a seeded random.Random and returns a new RGB image; the randomness picks
positions, signs, colours and texts, so the same seed always gives the same copy. Two named presets:
EDITS (the seven kinds of the built-in encoder evaluation) and BENCH_EDITS (the 24 kinds, at several
strengths, of bench.edited_copies). Their parameters differ on purpose (crop20 vs crop10/15/25, rotate4
vs rotate3/5, four vs five agency texts), so each keeps the numbers its results were measured with.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Mapping

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]

_TEXTS = (
    "(c) Sunrise Realty 2024",
    "DREAM HOMES +1 555 0142",
    "www.best-flats.example",
    "SOLD by Oak & Stone",
)
# bench.edited_copies' texts: one more, so its copies stay the ones its thresholds were calibrated on.
_BENCH_TEXTS = (*_TEXTS[:3], "Premier Estates - Listing #48213", _TEXTS[3])


def crop(fraction: float) -> Edit:
    """Keep a random (1-f)W x (1-f)H window: crop25 keeps 56 % of the pixels."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        cw, ch = max(1, round(w * (1 - fraction))), max(1, round(h * (1 - fraction)))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return img.crop((left, top, left + cw, top + ch))

    return edit


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
    """Re-encode as JPEG at the given quality (30: heavy block artefacts)."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality)
        out.seek(0)
        with Image.open(out) as decoded:
            return decoded.convert("RGB")

    return edit


def enhance(kind: str, factors: tuple[float, float]) -> Edit:
    """Brightness / contrast / saturation changed by one of two factors (darker or lighter etc.)."""
    enhancers = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast}
    enhancer = enhancers.get(kind, ImageEnhance.Color)

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        return enhancer(img).enhance(rng.choice(factors))

    return edit


def rotate(degrees: float) -> Edit:
    """Rotate by +-degrees about the centre, same frame size, black corners (a straightened photo)."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        angle = degrees if rng.random() < 0.5 else -degrees
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)

    return edit


def mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    """Horizontal flip."""
    return ImageOps.mirror(img)


def text_watermark(texts: tuple[str, ...], min_size: int) -> Edit:
    """Large semi-transparent agency text (one of `texts`) across 50-80 % of the width."""

    def edit(img: Image.Image, rng: random.Random) -> Image.Image:
        base = img.convert("RGBA")
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        words = rng.choice(texts)
        probe = draw.textbbox((0, 0), words, font=ImageFont.load_default(size=100))
        scaled = 100 * base.width * rng.uniform(0.5, 0.8)  # this order, so sizes round as they always did
        size = max(min_size, round(scaled / max(1, probe[2] - probe[0])))
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = draw.textbbox((0, 0), words, font=font)
        x = rng.randint(0, max(0, base.width - round(right - left)))
        y = rng.randint(0, max(0, base.height - round(bottom - top)))
        alpha = rng.randint(110, 200)
        colour = rng.choice([(255, 255, 255, alpha), (0, 0, 0, alpha), (230, 30, 30, alpha)])
        draw.text((x - left, y - top), words, font=font, fill=colour, stroke_width=max(1, size // 20))
        return Image.alpha_composite(base, layer).convert("RGB")

    return edit


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
    initials = rng.choice(["RE", "OS", "PH", "DH"])
    draw.text((side // 4, side // 6), initials, font=ImageFont.load_default(size=side // 3), fill="white")
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


# The built-in encoder evaluation (search.ml.evaluation): one strength per kind.
EDITS: dict[str, Edit] = {
    "crop20": crop(0.20),
    "mirror": mirror,
    "jpeg30": jpeg(30),
    "letterbox": letterbox,
    "brightness": enhance("brightness", (0.65, 1.4)),
    "rotate4": rotate(4.0),
    "text": text_watermark(_TEXTS, 8),
}

_bench_text = text_watermark(_BENCH_TEXTS, 10)
_contrast = enhance("contrast", (0.6, 1.5))
_saturation = enhance("saturation", (0.2, 1.8))
# bench.edited_copies (near_duplicates and near_duplicates_app): every kind at several strengths + combos.
BENCH_EDITS: dict[str, Edit] = {
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
    "contrast": _contrast,
    "saturation": _saturation,
    "rotate3": rotate(3),
    "rotate5": rotate(5),
    "mirror": mirror,
    "text": _bench_text,
    "logo": logo_watermark,
    "crop15+text+jpeg60": combo(crop(0.15), _bench_text, jpeg(60)),
    "mirror+crop15": combo(mirror, crop(0.15)),
    "mirror+crop25+jpeg60": combo(mirror, crop(0.25), jpeg(60)),
    "letterbox+resize50+jpeg30": combo(letterbox, resize(0.5), jpeg(30)),
    "rotate3+crop10+logo": combo(rotate(3), crop(0.10), logo_watermark),
    "contrast+saturation+text": combo(_contrast, _saturation, _bench_text),
}


def apply_edit(
    img: Image.Image, kind: str, rng: random.Random, preset: Mapping[str, Edit] = EDITS
) -> Image.Image:
    """The edited copy of an image for one edit kind of `preset` (KeyError names the kinds)."""
    if kind not in preset:
        raise KeyError(f"unknown edit {kind!r}; choose from {', '.join(preset)}")
    return preset[kind](img.convert("RGB"), rng)
