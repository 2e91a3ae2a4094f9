"""The progressive WGAN-GP + encoder training loop with progress callbacks, stop and resume."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from training.ml.checkpoint import (
    checkpoint_name,
    prune_checkpoints,
    remove_stale_temp_files,
    save_checkpoint,
)
from training.ml.config import GanConfig, Phase, phase_at, total_steps
from training.ml.data import batch_stream, make_dataset
from training.ml.gan import downsample, resize_to, upsample
from training.ml.losses import (
    critic_loss,
    ema_decay_at,
    ema_update,
    encoder_loss,
    generator_loss,
    gradient_penalty,
)
from training.ml.monitor import FdMonitor, FeatureFn, sample_grid
from training.ml.state import TrainState, new_state, pick_device, state_from_checkpoint, state_to_checkpoint


@dataclass
class StepStats:
    """Progress after one training step (step counts completed steps, from 1)."""

    step: int
    total_steps: int
    resolution: int
    alpha: float
    phase: Phase
    loss_g: float
    loss_d: float
    gp: float
    loss_enc: float
    images_per_s: float
    eta_s: float
    fd_lite: float | None = None
    samples: np.ndarray | None = None  # (N, res, res, 3) uint8: fixed latents through the EMA generator
    checkpoint: Path | None = None  # set when a checkpoint was just written
    extra: dict[str, float] = field(default_factory=dict)  # wasserstein estimate and encoder loss parts


@dataclass
class TrainResult:
    """What a train() call did."""

    steps_done: int
    last_checkpoint: Path | None
    stopped: bool
    last_fd_lite: float | None
    history: list[dict[str, Any]]


def _history_row(st: StepStats) -> dict[str, Any]:
    keys = ("step", "resolution", "alpha", "phase", "loss_g", "loss_d", "gp", "loss_enc", "images_per_s")
    row: dict[str, Any] = {k: getattr(st, k) for k in keys}
    row["fd_lite"] = st.fd_lite
    row.update(st.extra)
    return row


class _Amp:
    """bfloat16 autocast on CUDA when enabled (no loss scaling needed, unlike float16); no-op elsewhere."""

    def __init__(self, s: TrainState):
        cuda = s.device.type == "cuda"
        self.enabled = bool(s.cfg.mixed_precision and cuda and torch.cuda.is_bf16_supported())

    def __call__(self) -> contextlib.AbstractContextManager[Any]:
        if self.enabled:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _next_real(s: TrainState, stream: Iterator[torch.Tensor], res: int, alpha: float) -> torch.Tensor:
    batch = next(stream)  # (B, 3, S, S) in [-1, 1]
    s.samples_seen += batch.shape[0]
    real = resize_to(batch.to(s.device, non_blocking=True).float(), res)  # (B, 3, res, res)
    if alpha < 1.0:
        # The paper fades real images too, so D never sees sharper reals than G can produce.
        real = alpha * real + (1.0 - alpha) * upsample(downsample(real))
    if s.device.type == "cuda" and s.cfg.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    return real


def _critic_step(s: TrainState, real: torch.Tensor, res: int, alpha: float, amp: _Amp) -> dict[str, float]:
    b = real.shape[0]
    z, eps = s.randn(b, s.cfg.latent_dim), s.rand(b, 1, 1, 1)
    with amp():
        with torch.no_grad():
            fake = s.g(z, res, alpha)  # (B, 3, res, res)
        gp = gradient_penalty(s.d, real, fake, res, alpha, eps)
        loss = critic_loss(s.d(real, res, alpha), s.d(fake, res, alpha), gp, s.cfg.gp_weight, s.cfg.drift)
    s.opt_d.zero_grad(set_to_none=True)
    loss.total.backward()
    s.opt_d.step()
    return {"loss_d": _f(loss.total), "gp": _f(gp), "wasserstein": -_f(loss.wasserstein)}


def _generator_step(s: TrainState, res: int, alpha: float, amp: _Amp) -> float:
    z = s.randn(s.cfg.batch_size, s.cfg.latent_dim)
    with amp():
        loss = generator_loss(s.d(s.g(z, res, alpha), res, alpha))
    s.opt_g.zero_grad(set_to_none=True)
    loss.backward(inputs=list(s.g.parameters()))  # D's weights get no gradient from G's step
    s.opt_g.step()
    ema_update(s.g_ema, s.g, ema_decay_at(s.step, s.cfg.ema_decay))
    return _f(loss)


def _encoder_step(s: TrainState, real: torch.Tensor, res: int, alpha: float, amp: _Amp) -> dict[str, float]:
    if s.cfg.encoder_weight <= 0:
        return {"loss_enc": 0.0}
    z = s.randn(real.shape[0], s.cfg.latent_dim)
    with amp():
        loss = encoder_loss(s.e, s.g_ema, s.d, real, z, res, alpha, s.cfg.recon_weight, s.cfg.feature_weight)
    s.opt_e.zero_grad(set_to_none=True)
    (s.cfg.encoder_weight * loss.total).backward(inputs=list(s.e.parameters()))
    s.opt_e.step()
    return {
        "loss_enc": _f(loss.total),
        "enc_latent": _f(loss.latent),
        "enc_image": _f(loss.image),
        "enc_feature": _f(loss.feature),
    }


def train_step(
    s: TrainState, stream: Iterator[torch.Tensor], res: int, alpha: float, amp: _Amp
) -> dict[str, float]:
    """n_critic critic updates, one generator update + EMA, one encoder update; returns the losses."""
    out: dict[str, float] = {}
    for _ in range(s.cfg.n_critic):
        real = _next_real(s, stream, res, alpha)
        out = _critic_step(s, real, res, alpha, amp)
    out["loss_g"] = _generator_step(s, res, alpha, amp)
    out.update(_encoder_step(s, real, res, alpha, amp))
    return out


class _Clock:
    """Throughput over the recent steps (training compute only) and ETA from recent wall time per step."""

    def __init__(self, images_per_step: int, window: int = 50):
        self.images_per_step = images_per_step
        self.train_dt: deque[float] = deque(maxlen=window)
        self.wall_dt: deque[float] = deque(maxlen=window)

    def images_per_s(self) -> float:
        total = sum(self.train_dt)
        return self.images_per_step * len(self.train_dt) / total if total > 0 else 0.0

    def eta_s(self, remaining: int) -> float:
        return remaining * sum(self.wall_dt) / len(self.wall_dt) if self.wall_dt else 0.0


def _save(s: TrainState, checkpoint_dir: Path) -> Path:
    path = save_checkpoint(checkpoint_dir / checkpoint_name(s.step), state_to_checkpoint(s))
    prune_checkpoints(checkpoint_dir, s.cfg.keep_checkpoints)
    return path


def _due(step: int, every: int, n_total: int) -> bool:
    return step == n_total or (every > 0 and step % every == 0)


class _Run:
    """One train() call: state, data stream, monitors and bookkeeping."""

    def __init__(
        self,
        cfg: GanConfig,
        data: Sequence[Path] | Dataset[torch.Tensor],
        checkpoint_dir: Path,
        resume: Path | None,
        device: str | torch.device | None,
        fd_features: FeatureFn | None,
    ):
        dev = pick_device(device)
        self.dir = Path(checkpoint_dir)
        remove_stale_temp_files(self.dir)
        self.s = state_from_checkpoint(resume, cfg, dev) if resume is not None else new_state(cfg, dev)
        cfg = self.cfg = self.s.cfg
        dataset = data if isinstance(data, Dataset) else make_dataset(list(data), cfg.final_size, cfg.augment)
        self.fd = FdMonitor(cfg, dataset, fd_features) if fd_features and cfg.fd_every > 0 else None
        self.stream: Iterator[torch.Tensor] | None = batch_stream(
            dataset, cfg.batch_size, cfg.seed, self.s.samples_seen, cfg.num_workers, dev.type == "cuda"
        )
        self.amp, self.n_total = _Amp(self.s), total_steps(cfg)
        self.clock = _Clock(cfg.batch_size * cfg.n_critic)
        self.last_ckpt: Path | None = resume
        self.saved_at = self.s.step if resume is not None else -1

    def step(self) -> StepStats:
        """Train one step and produce its progress record (samples, FD-Lite, checkpoint when due)."""
        s, cfg, t0 = self.s, self.cfg, time.perf_counter()
        assert self.stream is not None
        res, alpha, phase = phase_at(cfg, s.step)
        losses = train_step(s, self.stream, res, alpha, self.amp)
        s.step += 1
        self.clock.train_dt.append(time.perf_counter() - t0)
        st = StepStats(
            step=s.step, total_steps=self.n_total, resolution=res, alpha=alpha, phase=phase,
            loss_g=losses.pop("loss_g"), loss_d=losses.pop("loss_d"), gp=losses.pop("gp"),
            loss_enc=losses.pop("loss_enc"), images_per_s=self.clock.images_per_s(), eta_s=0.0, extra=losses,
        )  # fmt: skip
        if _due(s.step, cfg.sample_every, self.n_total):
            st.samples = sample_grid(s.g_ema, s.fixed_latents, res, alpha, s.device)
        if self.fd is not None and _due(s.step, cfg.fd_every, self.n_total):
            st.fd_lite = s.last_fd = self.fd.measure(s.g_ema, res, alpha, s.device)
        s.history.append(_history_row(st))
        if _due(s.step, cfg.checkpoint_every, self.n_total):
            st.checkpoint = self.checkpoint()
        self.clock.wall_dt.append(time.perf_counter() - t0)
        st.eta_s = self.clock.eta_s(self.n_total - s.step)
        return st

    def checkpoint(self) -> Path:
        """Write a checkpoint of the current step."""
        self.last_ckpt, self.saved_at = _save(self.s, self.dir), self.s.step
        return self.last_ckpt

    def finish(self, stopped: bool) -> TrainResult:
        """Checkpoint whatever is unsaved, stop the loader workers and summarise."""
        self.stream = None  # drops the DataLoader iterator, which shuts its workers down
        if self.saved_at != self.s.step:
            self.checkpoint()
        s = self.s
        return TrainResult(s.step, self.last_ckpt, stopped, s.last_fd, s.history)


def train(
    cfg: GanConfig,
    data: Sequence[Path] | Dataset[torch.Tensor],
    checkpoint_dir: Path,
    *,
    on_step: Callable[[StepStats], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Path | None = None,
    device: str | torch.device | None = None,
    fd_features: FeatureFn | None = None,
) -> TrainResult:
    """Train (or resume) a GAN + encoder run; checkpoints every cfg.checkpoint_every steps and on stop/finish.

    should_stop is polled before every step; on True a checkpoint is written and the call returns, so a
    cancel loses nothing. fd_features maps a CPU (N, 3, H, W) float tensor in [-1, 1] to (N, D) features;
    with cfg.fd_every > 0 it yields FD-Lite between fixed real photos and EMA-generator samples.
    On resume, the checkpoint's config governs; only operational fields of `cfg` may differ.
    """
    run = _Run(cfg, data, checkpoint_dir, resume, device, fd_features)
    stopped = False
    while run.s.step < run.n_total:
        if should_stop is not None and should_stop():
            stopped = True
            break
        st = run.step()
        if on_step is not None:
            on_step(st)
    return run.finish(stopped)
