"""Everything a run needs to continue: models, optimisers, RNG, counters; to and from checkpoint dicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.ml.checkpoint import load_checkpoint
from training.ml.config import (
    OPERATIONAL_FIELDS,
    GanConfig,
    config_from_dict,
    config_to_dict,
    differing_fields,
)
from training.ml.gan import Discriminator, Encoder, Generator, build_models

_FIXED_LATENT_SALT = 0x5EED_F1


@dataclass
class TrainState:
    """Mutable state of one training run."""

    cfg: GanConfig
    device: torch.device
    g: Generator
    d: Discriminator
    e: Encoder
    g_ema: Generator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    opt_e: torch.optim.Adam
    gen: torch.Generator  # CPU generator for every random draw of the loop (latents, GP mixing)
    fixed_latents: torch.Tensor  # (n_samples, Z) on CPU, for the progress sample grid
    step: int = 0  # steps completed
    samples_seen: int = 0  # real images drawn from the stream (its resume position)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_fd: float | None = None

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal draw from the run's generator, on the run's device."""
        return torch.randn(*shape, generator=self.gen).to(self.device, non_blocking=True)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) draw from the run's generator, on the run's device."""
        return torch.rand(*shape, generator=self.gen).to(self.device, non_blocking=True)


def pick_device(device: str | torch.device | None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fixed_latents(cfg: GanConfig, n: int, salt: int = _FIXED_LATENT_SALT) -> torch.Tensor:
    """(n, Z) latents that depend only on the seed, so sample grids are comparable across steps and runs."""
    g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + salt) % 2**63)
    return torch.randn(n, cfg.latent_dim, generator=g)


def _adam(params: Any, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)


def new_state(cfg: GanConfig, device: torch.device) -> TrainState:
    """Fresh models and optimisers for a run, fully determined by cfg.seed."""
    g, d, e, g_ema = build_models(cfg)
    nets: list[nn.Module] = [g, d, e, g_ema]
    for net in nets:
        net.to(device)
        if device.type == "cuda" and cfg.channels_last:
            net.to(memory_format=torch.channels_last)
    return TrainState(
        cfg=cfg,
        device=device,
        g=g,
        d=d,
        e=e,
        g_ema=g_ema,
        opt_g=_adam(g.parameters(), cfg.lr, cfg.betas),
        opt_d=_adam(d.parameters(), cfg.lr, cfg.betas),
        opt_e=_adam(e.parameters(), cfg.encoder_lr, cfg.encoder_betas),
        gen=torch.Generator().manual_seed(cfg.seed),
        fixed_latents=fixed_latents(cfg, cfg.n_samples),
    )


def state_to_checkpoint(s: TrainState) -> dict[str, Any]:
    """Checkpoint dict of plain tensors and primitives (loadable with weights_only=True)."""
    return {
        "config": config_to_dict(s.cfg),
        "step": s.step,
        "samples_seen": s.samples_seen,
        "generator": s.g.state_dict(),
        "discriminator": s.d.state_dict(),
        "encoder": s.e.state_dict(),
        "generator_ema": s.g_ema.state_dict(),
        "opt_g": s.opt_g.state_dict(),
        "opt_d": s.opt_d.state_dict(),
        "opt_e": s.opt_e.state_dict(),
        "rng": s.gen.get_state(),
        "fixed_latents": s.fixed_latents,
        "history": s.history,
        "last_fd": s.last_fd,
        "torch_version": str(torch.__version__),  # TorchVersion itself is not weights_only-safe
    }


def resolve_resume_config(saved: GanConfig, requested: GanConfig) -> GanConfig:
    """The saved config with the requested operational fields; refuses changes that alter the numbers."""
    diff = differing_fields(saved, requested)
    if diff:
        raise ValueError(f"resume config differs from the checkpoint's in {diff}; start a new run instead")
    return dataclasses.replace(saved, **{k: getattr(requested, k) for k in OPERATIONAL_FIELDS})


def state_from_checkpoint(path: Path, requested: GanConfig, device: torch.device) -> TrainState:
    """Rebuild the exact state saved at `path` (models, optimisers, RNG, counters, history)."""
    ck = load_checkpoint(path)
    cfg = resolve_resume_config(config_from_dict(ck["config"]), requested)
    s = new_state(cfg, device)
    s.g.load_state_dict(ck["generator"])
    s.d.load_state_dict(ck["discriminator"])
    s.e.load_state_dict(ck["encoder"])
    s.g_ema.load_state_dict(ck["generator_ema"])
    s.opt_g.load_state_dict(ck["opt_g"])
    s.opt_d.load_state_dict(ck["opt_d"])
    s.opt_e.load_state_dict(ck["opt_e"])
    s.gen.set_state(ck["rng"])
    s.fixed_latents = ck["fixed_latents"]
    s.step, s.samples_seen = int(ck["step"]), int(ck["samples_seen"])
    s.history, s.last_fd = list(ck["history"]), ck["last_fd"]
    return s
