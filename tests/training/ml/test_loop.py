"""The training loop: progress callbacks, growth, stop, resume, FD-Lite and the GPU preset."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from training.ml.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from training.ml.config import PRESETS, GanConfig, total_steps
from training.ml.gan import resize_to
from training.ml.loop import StepStats, train


def _collect(into: list[StepStats]):  # type: ignore[no-untyped-def]
    return into.append


def _weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    ck = load_checkpoint(path)
    return {k: ck[k] for k in ("generator", "discriminator", "encoder", "generator_ema")}


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    for net in wa:
        for name in wa[net]:
            torch.testing.assert_close(
                wa[net][name], wb[net][name], rtol=1e-5, atol=1e-6, msg=f"{net}.{name}"
            )


def test_train_reports_every_step_with_growing_resolution(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    stats: list[StepStats] = []
    result = train(tiny_cfg, photo_paths, tmp_path, on_step=_collect(stats), device="cpu")
    n = total_steps(tiny_cfg)
    assert [s.step for s in stats] == list(range(1, n + 1))
    assert [s.resolution for s in stats] == sorted(s.resolution for s in stats)
    assert {s.resolution for s in stats} == {4, 8, 16}
    fades = [s.alpha for s in stats if s.phase == "fade"]
    assert fades and all(0 < a <= 1 for a in fades)
    for s in stats:
        assert all(math.isfinite(v) for v in (s.loss_g, s.loss_d, s.gp, s.loss_enc, s.images_per_s, s.eta_s))
        assert s.gp >= 0 and s.total_steps == n
    assert stats[-1].eta_s == 0.0 and stats[0].eta_s > 0
    assert not result.stopped and result.steps_done == n and len(result.history) == n


def test_train_emits_fixed_latent_samples_and_checkpoints_on_schedule(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, sample_every=4, checkpoint_every=5, keep_checkpoints=2)
    stats: list[StepStats] = []
    result = train(cfg, photo_paths, tmp_path, on_step=_collect(stats), device="cpu")
    sampled = [s for s in stats if s.samples is not None]
    assert [s.step for s in sampled] == [4, 8, 12, 15]  # every 4 and at the end
    for s in sampled:
        assert s.samples is not None
        assert s.samples.shape == (cfg.n_samples, s.resolution, s.resolution, 3)
        assert s.samples.dtype == np.uint8
    assert [s.step for s in stats if s.checkpoint is not None] == [5, 10, 15]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10, 15]  # older ones pruned
    assert result.last_checkpoint == latest_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "step_00000015.pt")["config"]["data"] == cfg.data


def test_should_stop_writes_checkpoint_and_returns_early(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, checkpoint_every=100)
    stats: list[StepStats] = []
    result = train(
        cfg, photo_paths, tmp_path, on_step=_collect(stats), should_stop=lambda: len(stats) >= 4, device="cpu"
    )
    assert result.stopped and result.steps_done == 4 and len(stats) == 4
    assert result.last_checkpoint is not None and load_checkpoint(result.last_checkpoint)["step"] == 4


def test_resumed_run_ends_with_same_weights_as_uninterrupted_run(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, total_steps=8, checkpoint_every=100)  # crosses the 4 -> 8 growth
    straight = train(cfg, photo_paths, tmp_path / "a", device="cpu")
    done: list[StepStats] = []
    first = train(
        cfg, photo_paths, tmp_path / "b", on_step=_collect(done), should_stop=lambda: len(done) >= 4
    )
    assert first.stopped and first.last_checkpoint is not None
    rest: list[StepStats] = []
    resumed = train(cfg, photo_paths, tmp_path / "b", resume=first.last_checkpoint, on_step=_collect(rest))
    assert [s.step for s in rest] == [5, 6, 7, 8]
    assert straight.last_checkpoint is not None and resumed.last_checkpoint is not None
    _assert_same_weights(straight.last_checkpoint, resumed.last_checkpoint)
    assert [h["loss_d"] for h in resumed.history] == pytest.approx([h["loss_d"] for h in straight.history])


def test_killed_run_resumes_from_last_checkpoint_losing_at_most_one_interval(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, checkpoint_every=4)

    def die_at_step_11(st: StepStats) -> None:
        if st.step == 11:
            raise KeyboardInterrupt  # stands in for SIGKILL: no chance to save

    with pytest.raises(KeyboardInterrupt):
        train(cfg, photo_paths, tmp_path, on_step=die_at_step_11)
    last = latest_checkpoint(tmp_path)
    assert last is not None and 11 - load_checkpoint(last)["step"] <= cfg.checkpoint_every
    result = train(cfg, photo_paths, tmp_path, resume=last)
    assert result.steps_done == total_steps(cfg) and not result.stopped


def test_resume_refuses_config_that_changes_the_model(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    first = train(dataclasses.replace(tiny_cfg, total_steps=2), photo_paths, tmp_path)
    assert first.last_checkpoint is not None
    with pytest.raises(ValueError, match="latent_dim"):
        train(
            dataclasses.replace(tiny_cfg, latent_dim=32), photo_paths, tmp_path, resume=first.last_checkpoint
        )


def _colour_features(x: torch.Tensor) -> np.ndarray:
    """Cheap stand-in for EfficientNet-Lite: 4x4 colour layout (N, 48)."""
    return resize_to(x, 4).flatten(1).numpy()


def test_train_reports_fd_lite_when_given_a_feature_function(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, fd_every=5, fd_samples=6)
    seen: list[torch.Tensor] = []

    def features(x: torch.Tensor) -> np.ndarray:
        seen.append(x)
        return _colour_features(x)

    stats: list[StepStats] = []
    result = train(cfg, photo_paths, tmp_path, on_step=_collect(stats), fd_features=features)
    fds = [(s.step, s.fd_lite) for s in stats if s.fd_lite is not None]
    assert [step for step, _ in fds] == [5, 10, 15]
    assert all(v is not None and math.isfinite(v) and v >= 0 for _, v in fds)
    assert result.last_fd_lite == fds[-1][1]
    assert all(t.device.type == "cpu" and t.min() >= -1 and t.max() <= 1 for t in seen)


def test_non_progressive_run_trains_at_final_size_from_a_tensor_dataset(
    tmp_path: Path, tiny_cfg: GanConfig
) -> None:
    cfg = dataclasses.replace(tiny_cfg, progressive=False, total_steps=3, encoder_weight=0.0)
    data = TensorDataset(torch.rand(5, 3, 16, 16) * 2 - 1)
    stats: list[StepStats] = []
    train(cfg, data, tmp_path, on_step=_collect(stats))
    assert {(s.resolution, s.alpha, s.phase) for s in stats} == {(16, 1.0, "stable")}
    assert all(s.loss_enc == 0.0 for s in stats)


def test_loader_workers_feed_the_same_batches_as_the_main_process(
    tmp_path: Path, tiny_cfg: GanConfig, photo_paths: list[Path]
) -> None:
    cfg = dataclasses.replace(tiny_cfg, total_steps=4)
    a = train(cfg, photo_paths, tmp_path / "a")
    b = train(dataclasses.replace(cfg, num_workers=2), photo_paths, tmp_path / "b")
    assert a.last_checkpoint is not None and b.last_checkpoint is not None
    _assert_same_weights(a.last_checkpoint, b.last_checkpoint)


@pytest.mark.gpu
def test_gpu_128_preset_trains_three_steps_on_cuda(tmp_path: Path, photo_paths: list[Path]) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = dataclasses.replace(PRESETS["gpu-128"], total_steps=3, num_workers=0)
    stats: list[StepStats] = []
    result = train(cfg, photo_paths, tmp_path, on_step=_collect(stats), device="cuda")
    assert result.steps_done == 3 and all(math.isfinite(s.loss_d) for s in stats)
    assert stats[-1].samples is not None and stats[-1].samples.shape[0] == cfg.n_samples
    # The full 128 px networks with bfloat16 autocast and channels-last.
    flat = dataclasses.replace(cfg, progressive=False, total_steps=2)
    full = train(flat, photo_paths, tmp_path / "flat", on_step=_collect(stats), device="cuda")
    assert full.steps_done == 2 and stats[-1].resolution == 128 and math.isfinite(stats[-1].loss_g)
