"""The shared edits: the evaluation preset and bench's preset keep their own strengths and seeds."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from search.ml.images.edits import BENCH_EDITS, EDITS, apply_edit


def noise(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """A seeded noise picture, so every edit visibly changes it."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_every_bench_edit_returns_a_changed_rgb_copy_and_is_reproducible() -> None:
    img = noise()
    for kind in BENCH_EDITS:
        a = apply_edit(img, kind, random.Random(f"1:{kind}"), BENCH_EDITS)
        b = apply_edit(img, kind, random.Random(f"1:{kind}"), BENCH_EDITS)
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b)), kind
        assert a.size != img.size or not np.array_equal(np.asarray(a), np.asarray(img)), kind


def test_each_preset_keeps_the_crop_and_resize_strengths_its_results_were_measured_with() -> None:
    img, rng = noise(), random.Random(0)
    sizes = {kind: apply_edit(img, kind, rng, BENCH_EDITS).size for kind in ("crop10", "crop25", "resize25")}
    assert sizes == {"crop10": (180, 90), "crop25": (150, 75), "resize25": (50, 25)}
    assert apply_edit(img, "crop20", rng).size == (160, 80)
    assert len(BENCH_EDITS) == 24 and len(EDITS) == 7


def test_the_presets_draw_different_watermark_texts_for_the_same_seed() -> None:
    img = noise((400, 300))
    differs = [
        not np.array_equal(
            np.asarray(apply_edit(img, "text", random.Random(seed))),
            np.asarray(apply_edit(img, "text", random.Random(seed), BENCH_EDITS)),
        )
        for seed in range(8)
    ]
    assert any(differs)


def test_an_edit_missing_from_the_preset_is_refused_with_the_preset_kinds() -> None:
    with pytest.raises(KeyError, match="choose from crop20, mirror"):
        apply_edit(noise(), "crop10", random.Random(0))
    with pytest.raises(KeyError, match="choose from crop10, crop15"):
        apply_edit(noise(), "crop20", random.Random(0), BENCH_EDITS)
