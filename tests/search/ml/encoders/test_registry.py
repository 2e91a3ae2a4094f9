"""Feature extraction: encoder outputs, registry, torchvision skip encoders and path batching."""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from search.ml.encoders.base import pool_features
from search.ml.encoders.builtin import (
    EncoderOptions,
    SkipPoolEncoder,
    torchvision_backbone,
    torchvision_checkpoint,
)
from search.ml.encoders.registry import (
    DEFAULT_ENCODER,
    Encoder,
    EncoderInfo,
    EncoderUnavailable,
    ExtractTimings,
    encoder_status,
    list_encoders,
    load_encoder,
    pick_device,
    register_encoder,
    unregister_encoder,
)
from search.ml.images.loading import Preprocess, fit_square

CPU = torch.device("cpu")


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A seeded 'room': smooth colour field, outlined boxes and ellipses, and mild sensor-like noise."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = Image.fromarray(low).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(10):
        x0, y0 = int(rng.integers(0, size[0] - 40)), int(rng.integers(0, size[1] - 40))
        box = (x0, y0, x0 + int(rng.integers(20, 140)), y0 + int(rng.integers(20, 120)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape(box, fill=colour, outline=(0, 0, 0), width=2)
    noisy = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (size[1], size[0], 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@pytest.fixture(scope="module")
def lite0() -> Encoder:
    return load_encoder(DEFAULT_ENCODER, CPU)


class _ConstantEncoder(Encoder):
    """Tiny encoder for registry tests: the per-channel mean of the input."""

    def __init__(self, device: torch.device) -> None:
        super().__init__(EncoderInfo("test-constant", 3, 16), Preprocess(image_size=16), device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + 10.0  # (B, 3); offset keeps the norm away from zero


@pytest.fixture
def hub_dir(tmp_path: Path):
    """An empty torch hub cache, restored afterwards."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(previous)


@pytest.fixture
def temp_encoder_name():
    name = "test-constant"
    yield name
    unregister_encoder(name)


def test_embed_images_returns_float32_unit_rows_of_encoder_dim(lite0: Encoder) -> None:
    vectors = lite0.embed_images([scene(2).convert("L"), scene(3).convert("RGBA")])  # converted to RGB
    assert vectors.shape == (2, 1280)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert lite0.info == EncoderInfo("effnet-lite0", 1280, 224)


def test_same_image_gives_identical_vectors_for_the_same_input(lite0: Encoder) -> None:
    img = scene(4)
    first, again = lite0.embed_images([img, img]), lite0.embed_images([img, img])
    assert np.array_equal(first[0], first[1])
    assert np.array_equal(first, again)


@pytest.fixture(scope="module")
def near_duplicates(lite0: Encoder) -> dict[str, np.ndarray]:
    img = scene(6)
    variants = {
        "original": img,
        "reencoded": jpeg_roundtrip(img, 75),
        "mirrored_crop": img.crop((20, 15, 300, 225)).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "unrelated": scene(7),
    }
    return dict(zip(variants, lite0.embed_images(list(variants.values())), strict=True))


def test_jpeg_reencoded_image_is_closer_than_an_unrelated_image(
    near_duplicates: dict[str, np.ndarray],
) -> None:
    original = near_duplicates["original"]
    assert original @ near_duplicates["reencoded"] > 0.88
    assert original @ near_duplicates["reencoded"] > original @ near_duplicates["unrelated"] + 0.04


def test_mirrored_crop_is_closer_than_an_unrelated_image(near_duplicates: dict[str, np.ndarray]) -> None:
    original = near_duplicates["original"]
    assert original @ near_duplicates["mirrored_crop"] > original @ near_duplicates["unrelated"] + 0.04


def test_gem_pooling_lies_between_average_and_max() -> None:
    fmap = torch.rand(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))  # (B, C, H, W)
    avg, gem = pool_features(fmap, "avg"), pool_features(fmap, "gem", 3.0)
    assert torch.all(gem >= avg - 1e-6)
    assert torch.all(gem <= fmap.amax(dim=(2, 3)) + 1e-6)
    flat = torch.full((1, 2, 3, 3), 0.5)
    torch.testing.assert_close(pool_features(flat, "gem"), pool_features(flat, "avg"))


def test_squash_keeps_whole_frame_and_crop_keeps_only_the_centre() -> None:
    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (100, 0, 200, 100))  # blue centre third, red sides
    squashed = np.asarray(fit_square(wide, 50, "squash"))
    cropped = np.asarray(fit_square(wide, 50, "crop"))
    assert squashed.shape == cropped.shape == (50, 50, 3)
    assert squashed[25, 2, 0] > 200  # red side still visible
    assert cropped[:, :, 2].min() > 200 and cropped[:, :, 0].max() < 60  # only the blue centre


def test_registry_registers_lists_loads_and_caches_a_custom_encoder(temp_encoder_name: str) -> None:
    register_encoder(temp_encoder_name, _ConstantEncoder)
    assert temp_encoder_name in list_encoders()
    assert encoder_status(temp_encoder_name)[0]
    encoder = load_encoder(temp_encoder_name, "cpu")
    assert load_encoder(temp_encoder_name, CPU) is encoder
    assert encoder.embed_images([scene(10)]).shape == (1, 3)


def test_registering_an_existing_name_needs_replace(temp_encoder_name: str) -> None:
    register_encoder(temp_encoder_name, _ConstantEncoder)
    old = load_encoder(temp_encoder_name, CPU)
    with pytest.raises(ValueError, match="replace=True"):
        register_encoder(temp_encoder_name, _ConstantEncoder)
    register_encoder(temp_encoder_name, _ConstantEncoder, replace=True)
    assert load_encoder(temp_encoder_name, CPU) is not old


def test_unknown_encoder_name_raises_key_error_listing_registered_names() -> None:
    with pytest.raises(KeyError) as info:
        load_encoder("no-such-encoder", CPU)
    assert "no-such-encoder" in str(info.value)
    assert DEFAULT_ENCODER in str(info.value)
    available, reason = encoder_status("no-such-encoder")
    assert not available and "unknown encoder" in reason


def test_builtin_encoders_are_registered_and_effnet_weights_are_found() -> None:
    assert {"effnet-lite0", "effnet-lite2", "resnet50-skip", "inception3-skip"} <= set(list_encoders())
    available, reason = encoder_status("effnet-lite0")
    assert available and reason.endswith(".pth")


def test_effnet_lite2_uses_its_native_260px_input() -> None:
    encoder = load_encoder("effnet-lite2", CPU)
    assert encoder.info == EncoderInfo("effnet-lite2", 1280, 260)
    assert encoder.embed_images([scene(11)]).shape == (1, 1280)


@pytest.mark.parametrize(
    ("name", "checkpoint"),
    [("resnet50-skip", "resnet50-11ad3fa6.pth"), ("inception3-skip", "inception_v3_google-0cc3c7bd.pth")],
)
def test_torchvision_encoder_without_cached_weights_names_the_expected_file(
    hub_dir: Path, name: str, checkpoint: str
) -> None:
    expected = str(hub_dir / "checkpoints" / checkpoint)
    with pytest.raises(EncoderUnavailable, match="weights not found") as info:
        load_encoder(name, CPU)
    assert expected in str(info.value)
    available, reason = encoder_status(name)
    assert not available and expected in reason


def test_torchvision_checkpoint_falls_back_to_the_older_cached_weights(hub_dir: Path) -> None:
    v1 = hub_dir / "checkpoints" / "resnet50-0676ba61.pth"
    v1.parent.mkdir()
    v1.touch()
    assert torchvision_checkpoint("resnet50-skip") == v1
    assert encoder_status("resnet50-skip") == (True, f"weights at {v1}")


def test_skip_encoder_concatenates_pooled_normalised_block_outputs() -> None:
    torch.manual_seed(0)
    backbone = torchvision_backbone("resnet50-skip", None)  # random init, nothing downloaded
    reference = copy.deepcopy(backbone).eval()
    encoder = SkipPoolEncoder("resnet50-skip", backbone, CPU, EncoderOptions(pooling="avg"))
    assert encoder.info.dim == 512 + 1024 + 2048
    images = [scene(12)]
    blocks: list[torch.Tensor] = []
    hooks = [
        getattr(reference, layer).register_forward_hook(lambda _m, _i, out: blocks.append(out))
        for layer in ("layer2", "layer3", "layer4")
    ]
    x = encoder.prep_batch(images)  # (B, 3, 224, 224) normalised
    with torch.inference_mode():
        reference(x)
    for hook in hooks:
        hook.remove()
    parts = [torch.nn.functional.normalize(block.mean(dim=(2, 3))) for block in blocks]
    expected = torch.cat(parts, dim=1).numpy() / math.sqrt(3)
    np.testing.assert_allclose(encoder.embed_images(images), expected, atol=2e-4)


def _write_jpegs(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"photo_{i}.jpg"
        scene(20 + i, (480, 320)).save(path, quality=90)
        paths.append(path)
    return paths


def test_embed_paths_reports_progress_and_matches_embed_images(lite0: Encoder, tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path, 3)
    steps: list[tuple[int, int]] = []
    timings = ExtractTimings()
    vectors = lite0.embed_paths(
        paths, batch_size=2, on_step=lambda d, t: steps.append((d, t)), timings=timings
    )
    assert steps == [(2, 3), (3, 3)]
    assert timings.images == 3 and timings.model_s > 0 and timings.decode_s > 0
    # embed_paths uses JPEG draft decoding, so allow for the slightly different downscaling.
    direct = lite0.embed_images([Image.open(p) for p in paths])
    assert np.all(np.sum(vectors * direct, axis=1) > 0.98)


def test_embed_paths_stops_between_batches_when_asked(lite0: Encoder, tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path, 3)
    steps: list[int] = []
    vectors = lite0.embed_paths(
        paths, batch_size=2, on_step=lambda d, _t: steps.append(d), should_stop=lambda: len(steps) >= 1
    )
    assert steps == [2]
    assert vectors.shape == (2, 1280)


def test_embed_paths_in_a_worker_process_equals_in_process(lite0: Encoder, tmp_path: Path) -> None:
    paths = _write_jpegs(tmp_path, 2)
    np.testing.assert_array_equal(
        lite0.embed_paths(paths, num_workers=1), lite0.embed_paths(paths, num_workers=0)
    )


def test_embed_paths_of_nothing_is_an_empty_matrix(lite0: Encoder) -> None:
    assert lite0.embed_paths([]).shape == (0, 1280)


def test_unreadable_file_raises_value_error_naming_it(lite0: Encoder, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        lite0.embed_paths([*_write_jpegs(tmp_path, 1), broken])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_pick_device_falls_back_to_cpu_and_rejects_missing_cuda() -> None:
    assert pick_device() == CPU
    assert pick_device("cpu") == CPU
    with pytest.raises(RuntimeError, match=r"(?i)cuda"):
        pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_precision_embeddings_match_cpu(lite0: Encoder) -> None:
    gpu = load_encoder(DEFAULT_ENCODER, "cuda")
    assert gpu.device.type == "cuda"
    images = [scene(30), scene(31)]
    agreement = np.sum(gpu.embed_images(images) * lite0.embed_images(images), axis=1)
    assert np.all(agreement > 0.995)
