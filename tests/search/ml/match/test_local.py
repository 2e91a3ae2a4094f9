"""SIFT extraction, caching and geometric verification on generated scenes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from search.ml.match.local import (
    LocalConfig,
    LocalFeatures,
    extract_local,
    extract_query_local,
    match_descriptors,
    root_sift,
    verify,
)

CFG = LocalConfig(max_side=400, n_features=600)


def _scene(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    """Random rectangles, ellipses and lines: plenty of corners for SIFT."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        w, h = (int(v) for v in rng.integers(8, 70, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=colour, width=3)
    return img


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return _scene(0)


@pytest.fixture(scope="module")
def scene_features(scene: Image.Image) -> LocalFeatures:
    return extract_local(scene, CFG)


def test_extract_local_caps_the_frame_and_returns_uint8_descriptors(scene: Image.Image) -> None:
    big = scene.resize((800, 600))
    feats = extract_local(big, CFG)
    assert feats.image_size == (400, 300)
    assert feats.descriptors.dtype == np.uint8
    assert feats.descriptors.shape == (len(feats), 128)
    assert feats.keypoints.shape == (len(feats), 2)
    assert len(feats) > 100
    assert feats.keypoints[:, 0].max() < 400


def test_extract_local_on_a_flat_image_returns_no_features() -> None:
    feats = extract_local(Image.new("RGB", (200, 100), (120, 120, 120)), CFG)
    assert len(feats) == 0
    assert verify(feats, feats, CFG).model == "none"


def test_to_bytes_round_trip(scene_features: LocalFeatures) -> None:
    data = scene_features.to_bytes()
    back = LocalFeatures.from_bytes(data)
    assert back.image_size == scene_features.image_size
    np.testing.assert_array_equal(back.keypoints, scene_features.keypoints)
    np.testing.assert_array_equal(back.descriptors, scene_features.descriptors)
    assert back.descriptors.dtype == np.uint8


def test_from_bytes_reads_the_npz_blobs_stored_before_the_raw_format(scene_features: LocalFeatures) -> None:
    buf = io.BytesIO()
    size = np.asarray(scene_features.image_size, dtype=np.int32)
    np.savez(buf, keypoints=scene_features.keypoints, descriptors=scene_features.descriptors, image_size=size)
    back = LocalFeatures.from_bytes(buf.getvalue())
    assert back.image_size == scene_features.image_size
    np.testing.assert_array_equal(back.descriptors, scene_features.descriptors)


def test_from_bytes_refuses_a_truncated_blob(scene_features: LocalFeatures) -> None:
    data = scene_features.to_bytes()
    with pytest.raises(ValueError, match="does not hold"):
        LocalFeatures.from_bytes(data[:-1])
    with pytest.raises(ValueError, match="header"):
        LocalFeatures.from_bytes(data[:10])


@pytest.mark.parametrize("blob", [b"garbage", b"PK\x03\x04" + b"\x00" * 40, b""])
def test_from_bytes_refuses_a_blob_in_neither_format_with_a_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError, match="not a local features blob"):
        LocalFeatures.from_bytes(blob)


def test_from_bytes_refuses_an_npz_without_the_local_features_arrays() -> None:
    buf = io.BytesIO()
    np.savez(buf, something_else=np.zeros(3))
    with pytest.raises(ValueError, match="KeyError"):
        LocalFeatures.from_bytes(buf.getvalue())


def test_query_features_on_a_smaller_frame_still_verify_an_edited_copy(scene: Image.Image) -> None:
    stored = extract_local(scene.resize((800, 600)), LocalConfig(max_side=640, n_features=1000))
    w, h = scene.size
    copy = scene.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((720, 540))
    query = extract_query_local(copy, LocalConfig(query_max_side=480))
    assert max(query.image_size) == 480
    assert verify(query, stored).affine_inliers >= 15


def test_verify_finds_an_affine_match_for_a_crop(scene: Image.Image, scene_features: LocalFeatures) -> None:
    cropped = scene.crop((40, 30, 340, 255))  # 75 % of each side
    v = verify(extract_local(cropped, CFG), scene_features, CFG)
    assert v.model == "affine"
    assert not v.mirrored
    assert v.affine_inliers >= 50
    assert v.affine_inliers / v.matches > 0.8
    assert v.affine_coverage > 0.6
    assert v.scale == pytest.approx(1.0, abs=0.03)


def test_verify_finds_a_mirrored_copy(scene: Image.Image, scene_features: LocalFeatures) -> None:
    flipped = ImageOps.mirror(scene).crop((0, 0, 360, 280))
    v = verify(extract_local(flipped, CFG), scene_features, CFG)
    assert v.mirrored
    assert v.model == "affine"
    assert v.affine_inliers >= 50
    assert abs(v.rotation_deg) < 2.0


def test_mirrored_features_match_features_of_the_mirrored_image(scene: Image.Image) -> None:
    direct = root_sift(extract_local(ImageOps.mirror(scene), CFG).descriptors)
    derived = root_sift(extract_local(scene, CFG).mirrored().descriptors)
    qi, _ = match_descriptors(derived, direct, ratio=0.8)
    assert len(qi) > 0.5 * len(derived)


def test_verify_without_mirror_misses_a_mirrored_copy(
    scene: Image.Image, scene_features: LocalFeatures
) -> None:
    cfg = LocalConfig(max_side=400, n_features=600, try_mirror=False)
    v = verify(extract_local(ImageOps.mirror(scene), cfg), scene_features, cfg)
    assert v.affine_inliers < 15


def test_verify_rejects_an_unrelated_scene(scene_features: LocalFeatures) -> None:
    v = verify(extract_local(_scene(7), CFG), scene_features, CFG)
    assert v.affine_inliers < 15
    assert v.inliers < 20


def test_verify_tolerates_small_rotation(scene: Image.Image, scene_features: LocalFeatures) -> None:
    rotated = scene.rotate(5, resample=Image.Resampling.BICUBIC)
    v = verify(extract_local(rotated, CFG), scene_features, CFG)
    assert v.model == "affine"
    assert abs(abs(v.rotation_deg) - 5.0) < 1.0


@pytest.mark.shared_data
def test_real_listing_photo_crop_matches_and_other_listing_does_not() -> None:
    from tests.shared_data import require_shared_data

    houses = require_shared_data() / "houses"
    with Image.open(houses / "1_kitchen.jpg") as a, Image.open(houses / "2_kitchen.jpg") as b:
        original, other = a.convert("RGB"), b.convert("RGB")
    w, h = original.size
    copy = ImageOps.mirror(original.crop((w // 8, h // 8, w - w // 8, h - h // 8)))
    stored = extract_local(original)
    same = verify(extract_local(copy), stored)
    assert same.mirrored
    assert same.affine_inliers > 100
    different = verify(extract_local(other), stored)
    assert different.affine_inliers < 15


def test_query_features_are_the_strongest_prefix_of_a_full_extraction(scene: Image.Image) -> None:
    cfg = LocalConfig(max_side=400, n_features=120, verify_features=60, query_max_side=0)
    full, query = extract_local(scene, cfg), extract_query_local(scene, cfg).strongest(60)
    # SIFT keeps keypoints tied with the 60th; verify() takes the same prefix of either.
    assert len(full) == 120 and len(query) == 60

    # The same features; one location's orientations (equal responses) may come in another order.
    def features(f: LocalFeatures) -> set[tuple[float, float, bytes]]:
        rounded = np.round(f.keypoints, 2).tolist()
        return {(x, y, d.tobytes()) for (x, y), d in zip(rounded, f.descriptors, strict=True)}

    assert features(query) == features(full.strongest(60))
    assert query.image_size == full.image_size


def test_query_features_are_all_features_when_verification_uses_all(scene: Image.Image) -> None:
    for verify_features in (0, 120, 900):
        cfg = LocalConfig(max_side=400, n_features=120, verify_features=verify_features, query_max_side=0)
        assert len(extract_query_local(scene, cfg)) == len(extract_local(scene, cfg))
