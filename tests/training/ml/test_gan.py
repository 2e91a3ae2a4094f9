"""Building blocks, models, losses, FD, checkpoints, data and the encoder wrapper of training.ml."""

from __future__ import annotations

import dataclasses
import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tests.evil_pickle import CODE_RAN, Evil
from training.ml.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from training.ml.config import (
    PRESETS,
    GanConfig,
    config_from_dict,
    config_to_dict,
    phase_at,
    resolutions,
    total_steps,
)
from training.ml.data import SampleStream, make_dataset
from training.ml.embed import load_gan_encoder, load_generator
from training.ml.fd import frechet_distance
from training.ml.gan import Discriminator, Encoder, Generator, build_models, downsample, upsample
from training.ml.layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm
from training.ml.losses import ema_decay_at, ema_update, gradient_penalty
from training.ml.state import new_state, state_to_checkpoint

# ---- layers ---------------------------------------------------------------------------------------------


def test_equalized_conv_scales_unit_normal_weights_by_he_constant() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(16, 8, 3, padding=1)
    x = torch.randn(2, 16, 5, 5)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(16 * 9))
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.1)  # stored N(0, 1), not He-scaled
    expected = F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_equalized_linear_scales_by_fan_in_and_gain() -> None:
    lin = EqualizedLinear(32, 4, gain=1.0)
    x = torch.randn(3, 32)
    assert lin.scale == pytest.approx(1 / math.sqrt(32))
    torch.testing.assert_close(lin(x), x @ (lin.weight * lin.scale).T + lin.bias)


def test_pixel_norm_makes_each_pixel_vector_unit_rms() -> None:
    x = torch.randn(2, 6, 3, 3) * 5 + 1
    y = PixelNorm()(x)
    norms = y.norm(dim=1) / math.sqrt(6)  # (B, H, W)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-4, atol=1e-4)


def test_minibatch_stddev_appends_one_channel_with_group_std() -> None:
    x = torch.randn(8, 5, 4, 4)
    y = MinibatchStdDev(group_size=4)(x)
    assert y.shape == (8, 6, 4, 4)
    torch.testing.assert_close(y[:, :5], x)
    groups = x.reshape(4, 2, 5, 4, 4)  # sample i is in group i % 2
    expected = groups.std(dim=0, unbiased=False).mean(dim=(1, 2, 3))  # (2,)
    torch.testing.assert_close(y[:, 5, 0, 0], expected.repeat(4), rtol=1e-3, atol=1e-4)
    same = MinibatchStdDev()(torch.ones(4, 2, 3, 3))
    assert same[:, 2].abs().max().item() < 1e-3  # identical samples: no spread


def test_minibatch_stddev_handles_batch_not_divisible_by_group() -> None:
    assert MinibatchStdDev(group_size=4)(torch.randn(6, 3, 2, 2)).shape == (6, 4, 2, 2)


# ---- models ---------------------------------------------------------------------------------------------


def test_models_have_right_shapes_at_every_resolution(tiny_cfg: GanConfig) -> None:
    g, d, e, _ = build_models(tiny_cfg)
    z = torch.randn(4, tiny_cfg.latent_dim)
    for res in resolutions(tiny_cfg):
        for alpha in (0.5, 1.0):
            img = g(z, res, alpha)
            assert img.shape == (4, 3, res, res)
            assert d(img, res, alpha).shape == (4,)
            assert e(img, res, alpha).shape == (4, tiny_cfg.latent_dim)


def test_generator_fade_in_blends_previous_resolution(tiny_cfg: GanConfig) -> None:
    g = Generator(tiny_cfg)
    z = torch.randn(3, tiny_cfg.latent_dim)
    torch.testing.assert_close(g(z, 8, 0.0), upsample(g(z, 4, 1.0)))
    torch.testing.assert_close(g(z, 8, 1.0), g(z, 8))
    mid = 0.3 * g(z, 8, 1.0) + 0.7 * upsample(g(z, 4, 1.0))
    torch.testing.assert_close(g(z, 8, 0.3), mid)


def test_discriminator_and_encoder_fade_in_use_downsampled_path_at_alpha_zero(tiny_cfg: GanConfig) -> None:
    x = torch.randn(4, 3, 16, 16)
    for net in (Discriminator(tiny_cfg), Encoder(tiny_cfg)):
        torch.testing.assert_close(net(x, 16, 0.0), net(downsample(x), 8, 1.0))
        assert not torch.allclose(net(x, 16, 1.0), net(x, 16, 0.0))


def test_build_models_is_seeded_and_ema_starts_equal(tiny_cfg: GanConfig) -> None:
    g1, _, _, ema = build_models(tiny_cfg)
    g2, _, _, _ = build_models(tiny_cfg)
    for a, b, c in zip(g1.parameters(), g2.parameters(), ema.parameters(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not any(p.requires_grad for p in ema.parameters())


# ---- losses ---------------------------------------------------------------------------------------------


class _Linear(nn.Module):
    """Critic f(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor, res: int, alpha: float) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_is_squared_gap_of_gradient_norm_to_one() -> None:
    real, fake, eps = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4), torch.rand(4, 1, 1, 1)
    w = torch.randn(3, 4, 4)
    unit = _Linear(w / w.norm())
    double = _Linear(2 * w / w.norm())
    assert gradient_penalty(unit, real, fake, 4, 1.0, eps).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_penalty(double, real, fake, 4, 1.0, eps).item() == pytest.approx(1.0, rel=1e-5)


def test_gradient_penalty_of_discriminator_is_positive_finite_and_differentiable(tiny_cfg: GanConfig) -> None:
    d = Discriminator(tiny_cfg)
    gp = gradient_penalty(d, torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), 8, 0.5, torch.rand(4, 1, 1, 1))
    assert gp.item() > 0 and math.isfinite(gp.item())
    gp.backward()
    assert d.from_rgb[1][0].weight.grad is not None


def test_ema_update_moves_average_by_one_minus_decay() -> None:
    ema, model = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in ema.parameters()]
    ema_update(ema, model, decay=0.9)
    for old, new, target in zip(before, ema.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target)


def test_ema_decay_warms_up_then_reaches_configured_value() -> None:
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(100, 0.999) < 0.999
    assert ema_decay_at(100_000, 0.999) == 0.999


# ---- Fréchet distance -----------------------------------------------------------------------------------


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_mean_shift() -> None:
    feats = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shifts = [frechet_distance(feats, feats + s) for s in (0.5, 1.0, 2.0)]
    assert shifts[0] < shifts[1] < shifts[2]
    assert shifts[1] == pytest.approx(8.0, rel=1e-6)  # pure mean shift of 1 in 8 dims: ||mu_a - mu_b||^2


def test_frechet_distance_matches_closed_form_for_scaled_gaussians() -> None:
    a = np.random.default_rng(1).normal(size=(5000, 3))
    # Same mean, covariance scaled by 4: FD = tr(S + 4S - 2*2S) = tr(S) ≈ 3.
    assert frechet_distance(a, 2 * a) == pytest.approx(3.0, rel=0.05)


def test_frechet_distance_is_finite_with_fewer_samples_than_dims() -> None:
    rng = np.random.default_rng(2)
    value = frechet_distance(rng.normal(size=(10, 64)), rng.normal(size=(12, 64)))
    assert math.isfinite(value) and value > 0
    with pytest.raises(ValueError):
        frechet_distance(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)))


# ---- config and schedule --------------------------------------------------------------------------------


def test_config_round_trips_through_plain_dict() -> None:
    cfg = dataclasses.replace(PRESETS["gpu-128"], data={"cluster": 3}, seed=7)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError):
        config_from_dict({**config_to_dict(cfg), "bogus": 1})


@pytest.mark.parametrize("bad", [{"final_size": 48}, {"final_size": 4}, {"embed_dim": 7}, {"start_size": 2}])
def test_config_refuses_invalid_values(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        GanConfig(**bad)  # type: ignore[arg-type]


def test_phase_schedule_grows_resolution_with_fade_in(tiny_cfg: GanConfig) -> None:
    assert total_steps(tiny_cfg) == 15  # 4 stable, 8 fade+stable, 16 fade+stable; 3 steps each
    got = [phase_at(tiny_cfg, i) for i in range(16)]
    assert got[0] == (4, 1.0, "stable")
    assert [g[1] for g in got[3:6]] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert got[3][0] == 8 and got[3][2] == "fade"
    assert got[6] == (8, 1.0, "stable") and got[9][:1] == (16,) and got[15] == (16, 1.0, "stable")
    flat = dataclasses.replace(tiny_cfg, progressive=False)
    assert total_steps(flat) == 15 and phase_at(flat, 0) == (16, 1.0, "stable")


# ---- data -----------------------------------------------------------------------------------------------


def test_dataset_gives_rgb_squares_in_unit_range_with_seeded_augmentation(photo_paths: list[Path]) -> None:
    ds = make_dataset(photo_paths, 16, augment=True)
    x = ds.load(0, seed=1)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min().item() >= -1.0 and x.max().item() <= 1.0
    torch.testing.assert_close(ds.load(0, seed=1), x)
    variants = {tuple(ds.load(0, seed=s).flatten().tolist()) for s in range(12)}
    assert len(variants) > 1  # crops/flips differ between seeds
    plain = make_dataset(photo_paths, 16, augment=False)
    torch.testing.assert_close(plain[0], ds.load(0, seed=None))  # no augmentation: the centre crop


def test_sample_stream_depends_only_on_seed_and_position(photo_paths: list[Path]) -> None:
    ds = make_dataset(photo_paths, 8)
    a, b = SampleStream(ds, seed=3), SampleStream(ds, seed=3)
    for pos in (0, 5, 6, 13, 2):
        torch.testing.assert_close(a[pos], b[pos])
    first_epoch = {a._index(p) for p in range(len(ds))}
    assert first_epoch == set(range(len(ds)))  # each epoch is a permutation


# ---- checkpoints ----------------------------------------------------------------------------------------


def test_load_checkpoint_refuses_file_that_would_execute_code(tmp_path: Path) -> None:
    path = tmp_path / checkpoint_name(1)
    torch.save({"format": CHECKPOINT_FORMAT, "config": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert CODE_RAN == []


def _zip_without_pickle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/other.txt", "x")  # a zip container torch opens, with no data.pkl
    return buf.getvalue()


@pytest.mark.parametrize(
    "junk", [b"", b"not a checkpoint at all", b"PK\x03\x04" + bytes(64), _zip_without_pickle()]
)
def test_load_checkpoint_turns_junk_files_into_a_checkpoint_error(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / checkpoint_name(2)
    path.write_bytes(junk)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_save_checkpoint_round_trips_and_failed_write_keeps_previous_file(
    tmp_path: Path, tiny_cfg: GanConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = state_to_checkpoint(new_state(tiny_cfg, torch.device("cpu")))
    path = save_checkpoint(tmp_path / checkpoint_name(3), state)
    loaded = load_checkpoint(path)
    assert loaded["config"] == config_to_dict(tiny_cfg)
    torch.testing.assert_close(loaded["fixed_latents"], state["fixed_latents"])

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {**state, "step": 99})
    assert load_checkpoint(path)["step"] == 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_latest_checkpoint_picks_highest_step_and_ignores_temp_files(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 20, 10):
        (tmp_path / checkpoint_name(step)).write_bytes(b"x")
    (tmp_path / ".step_00000030.pt.abc.tmp").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == tmp_path / checkpoint_name(20)


# ---- using a trained run --------------------------------------------------------------------------------


def test_gan_encoder_embeds_photos_l2_normalised_with_latent_dim(tmp_path: Path, tiny_cfg: GanConfig) -> None:
    state = new_state(tiny_cfg, torch.device("cpu"))
    state.step = total_steps(tiny_cfg)
    path = save_checkpoint(tmp_path / checkpoint_name(state.step), state_to_checkpoint(state))
    enc = load_gan_encoder(path, device="cpu")
    assert (enc.info.dim, enc.info.image_size) == (tiny_cfg.latent_dim, 16)
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "blue", "white")]
    emb = enc.embed_images(images)
    assert emb.shape == (3, tiny_cfg.latent_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert enc.embed_images([]).shape == (0, tiny_cfg.latent_dim)
    samples = load_generator(path, device="cpu").sample(2, seed=1)
    assert samples.shape == (2, 16, 16, 3) and samples.dtype == np.uint8
