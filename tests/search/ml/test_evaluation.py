"""The built-in encoder evaluation: near-duplicate recall@1 with edited copies, room purity and ARI."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from search.ml.evaluation import (
    EvalConfig,
    EvaluationStopped,
    evaluate,
    knn_purity,
    room_agreement,
    sample_indices,
)
from search.ml.images.edits import EDITS, apply_edit


def hue_picture(index: int, count: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A picture whose saturated pixels all share one hue, spaced evenly around the colour wheel."""
    rng = np.random.default_rng(index)
    hue = int(255 * index / count)
    img = Image.new("HSV", size, (hue, 220, 200))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, size[0] - 10)), int(rng.integers(0, size[1] - 10))
        box = [x0, y0, x0 + int(rng.integers(5, 30)), y0 + int(rng.integers(5, 30))]
        draw.rectangle(box, fill=(hue, int(rng.integers(160, 255)), int(rng.integers(90, 255))))
    return img.convert("RGB")


def hue_embed(images: list[Image.Image]) -> np.ndarray:
    """A 'perfect' encoder for hue pictures: the hue histogram of saturated pixels (bars and text ignored)."""
    rows = []
    for img in images:
        hsv = np.asarray(img.convert("HSV"), dtype=np.int32).reshape(-1, 3)
        hues = hsv[(hsv[:, 1] > 120) & (hsv[:, 2] > 60), 0]
        hist = np.bincount(hues * 48 // 256, minlength=48).astype(np.float32) + 1e-3
        rows.append(hist / np.linalg.norm(hist))
    return np.stack(rows)


def test_every_edit_returns_a_changed_rgb_copy_and_is_reproducible() -> None:
    img = hue_picture(0, 4)
    for kind in EDITS:
        a = apply_edit(img, kind, random.Random(f"1:{kind}"))
        b = apply_edit(img, kind, random.Random(f"1:{kind}"))
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b)), kind
        assert a.size != img.size or not np.array_equal(np.asarray(a), np.asarray(img)), kind
    with pytest.raises(KeyError, match="unknown edit 'blur'"):
        apply_edit(img, "blur", random.Random(0))


def test_a_perfect_encoder_finds_every_edited_copy() -> None:
    images = [hue_picture(i, 12) for i in range(12)]
    result = evaluate(hue_embed, images, [""] * 12, EvalConfig(seed=3))
    near = result["near_duplicate"]
    assert near["recall_at_1"] == 1.0 and set(near["per_edit"]) == set(EDITS)
    assert near["queries"] == 12 * len(EDITS) and near["distractors"] == 12


def test_a_constant_or_random_encoder_finds_almost_nothing() -> None:
    images = [hue_picture(i, 20) for i in range(20)]
    rng = np.random.default_rng(0)

    def constant(batch: list[Image.Image]) -> np.ndarray:
        return np.ones((len(batch), 8), dtype=np.float32) / np.sqrt(8)

    def noise(batch: list[Image.Image]) -> np.ndarray:
        x = rng.normal(size=(len(batch), 32)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    for embed in (constant, noise):
        near = evaluate(embed, images, [""] * 20)["near_duplicate"]
        assert near["recall_at_1"] <= 0.2, embed.__name__
        assert near["worst_recall"] == min(near["per_edit"].values())


def test_room_measures_are_perfect_for_separable_tagged_clusters() -> None:
    rng = np.random.default_rng(1)
    tags = ["kitchen"] * 10 + ["bath"] * 10 + ["garden"] * 10
    centres = np.eye(3, 16, dtype=np.float32)[[0] * 10 + [1] * 10 + [2] * 10]
    x = centres + 0.05 * rng.normal(size=(30, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    room = room_agreement(x, tags, EvalConfig(seed=0))
    assert room["ari"] == pytest.approx(1.0) and room["knn_purity"] == 1.0
    assert room["counts"] == {"bath": 10, "garden": 10, "kitchen": 10} and "skipped" not in room


def test_room_measures_are_skipped_with_a_reason_when_tags_are_too_few() -> None:
    x = np.eye(30, 8, dtype=np.float32)
    one_tag = room_agreement(x, ["kitchen"] * 30, EvalConfig())
    assert "at least 2 room tags" in one_tag["skipped"] and "ari" not in one_tag
    few = room_agreement(x, ["kitchen", "bath"] * 5 + [""] * 20, EvalConfig())
    assert few["skipped"] == "needs at least 20 tagged photos, found 10" and few["tagged"] == 10


def test_knn_purity_counts_neighbours_with_the_same_label() -> None:
    x = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], dtype=np.float32)
    assert knn_purity(x, np.array([0, 0, 1, 1]), k=1) == 1.0
    assert knn_purity(x, np.array([0, 1, 0, 1]), k=1) == 0.0


def test_the_evaluation_is_deterministic_reports_progress_and_stops_on_request() -> None:
    images = [hue_picture(i, 6) for i in range(6)]
    rng = np.random.default_rng(5)
    offsets = rng.normal(size=(48,)).astype(np.float32)

    def shifted(batch: list[Image.Image]) -> np.ndarray:
        x = hue_embed(batch) + 0.2 * offsets
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    steps: list[tuple[int, int]] = []
    first = evaluate(
        shifted, images, [""] * 6, EvalConfig(seed=2, batch=4), on_step=lambda d, t: steps.append((d, t))
    )
    assert first == evaluate(shifted, images, [""] * 6, EvalConfig(seed=2, batch=4))
    assert steps[-1] == (6 * (1 + len(EDITS)), 6 * (1 + len(EDITS)))
    with pytest.raises(EvaluationStopped):
        evaluate(shifted, images, [""] * 6, should_stop=lambda: True)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="at least 2 photos"):
        evaluate(hue_embed, [hue_picture(0, 2)], [""])
    with pytest.raises(ValueError, match="1 tags for 2 photos"):
        evaluate(hue_embed, [hue_picture(0, 2), hue_picture(1, 2)], [""])
    with pytest.raises(ValueError, match="unknown or no edit kinds"):
        evaluate(hue_embed, [hue_picture(0, 2), hue_picture(1, 2)], ["", ""], EvalConfig(edits=("blur",)))
    assert sample_indices(10, 4, seed=1) == sample_indices(10, 4, seed=1)
    assert sample_indices(3, 200, seed=0) == [0, 1, 2]
