"""GAN run configuration, presets and the progressive-growing schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from search.ml import config as _config

Phase = Literal["fade", "stable"]

# Fields that only change how a run is observed or stored, not its numbers; a resumed run may change them.
OPERATIONAL_FIELDS = frozenset(
    {
        "total_steps",
        "checkpoint_every",
        "sample_every",
        "fd_every",
        "fd_samples",
        "num_workers",
        "keep_checkpoints",
    }
)


@dataclass
class GanConfig:
    """Everything that defines a GAN run; saved verbatim in every checkpoint."""

    seed: int = 0
    final_size: int = 64  # power of 2, >= 8
    start_size: int = 4
    latent_dim: int = 128
    base_channels: int = 128  # channels at final_size; doubles per halving of resolution up to max_channels
    max_channels: int = 256
    batch_size: int = 16
    steps_per_phase: int = 200  # steps per stabilise phase and per fade-in phase
    total_steps: int | None = None  # default: derived from the phases
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    n_critic: int = 1
    gp_weight: float = 10.0
    drift: float = 1e-3
    ema_decay: float = 0.999
    progressive: bool = True  # False: plain WGAN-GP at final_size from step 0 (comparison baseline)
    encoder_weight: float = 1.0  # multiplies the encoder loss; 0 turns encoder training off
    # The encoder is not in the adversarial game, so it can use a faster optimiser than G and D: with
    # equalised LR, lr 1e-3 / beta1 0 inverted a fixed 8 px generator ~3x slower than 5e-3 / 0.9.
    encoder_lr: float = 5e-3
    encoder_betas: tuple[float, float] = (0.9, 0.99)
    recon_weight: float = 1.0  # real-photo reconstruction terms relative to latent reconstruction
    feature_weight: float = 0.1  # discriminator-feature term within the real-photo reconstruction
    embed_dim: int | None = None  # the encoder inverts G, so it must equal latent_dim (None: latent_dim)
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    sample_every: int = 50
    n_samples: int = 16  # fixed latents for the sample grid
    fd_every: int = 0  # 0 = off
    fd_samples: int = 64
    num_workers: int = 0
    augment: bool = True
    mixed_precision: bool = True  # bfloat16 autocast, only effective on CUDA
    channels_last: bool = True  # only effective on CUDA
    data: dict[str, Any] = field(default_factory=dict)  # the data choice, recorded verbatim

    def __post_init__(self) -> None:
        if self.embed_dim is None:
            self.embed_dim = self.latent_dim
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self.encoder_betas = (float(self.encoder_betas[0]), float(self.encoder_betas[1]))
        _validate(self)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _validate(cfg: GanConfig) -> None:
    if not _is_pow2(cfg.final_size) or cfg.final_size < 8:
        raise ValueError(f"final_size must be a power of 2 >= 8, got {cfg.final_size}")
    if not _is_pow2(cfg.start_size) or not 4 <= cfg.start_size <= cfg.final_size:
        raise ValueError(f"start_size must be a power of 2 in [4, final_size], got {cfg.start_size}")
    if cfg.embed_dim != cfg.latent_dim:
        raise ValueError("embed_dim must equal latent_dim: the encoder inverts the generator")
    if cfg.batch_size < 2 or cfg.steps_per_phase < 1 or cfg.n_critic < 1:
        raise ValueError("batch_size >= 2, steps_per_phase >= 1 and n_critic >= 1 are required")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError("ema_decay must be in [0, 1)")


def resolutions(cfg: GanConfig) -> list[int]:
    """Resolutions the run passes through, smallest first (just final_size when not progressive)."""
    if not cfg.progressive:
        return [cfg.final_size]
    n = int(math.log2(cfg.final_size // cfg.start_size))
    return [cfg.start_size * 2**i for i in range(n + 1)]


def scheduled_steps(cfg: GanConfig) -> int:
    """Steps of the full phase schedule: one stable phase, then fade + stable per added resolution."""
    # The non-progressive baseline gets the same default step budget as the progressive run.
    n_res = int(math.log2(cfg.final_size // cfg.start_size)) + 1
    return cfg.steps_per_phase * (2 * n_res - 1)


def total_steps(cfg: GanConfig) -> int:
    """Steps the run will take: total_steps if set, else the phase schedule."""
    return cfg.total_steps if cfg.total_steps is not None else scheduled_steps(cfg)


def phase_at(cfg: GanConfig, step: int) -> tuple[int, float, Phase]:
    """(resolution, fade-in alpha, phase) for a 0-based step; the last stable phase extends forever."""
    if not cfg.progressive:
        return cfg.final_size, 1.0, "stable"
    res_list = resolutions(cfg)
    k = step // cfg.steps_per_phase  # phase index: 0 stable@start, then (fade, stable) pairs
    if k >= 2 * len(res_list) - 1:
        return res_list[-1], 1.0, "stable"
    res = res_list[(k + 1) // 2]
    if k % 2 == 1:
        return res, (step % cfg.steps_per_phase + 1) / cfg.steps_per_phase, "fade"
    return res, 1.0, "stable"


def config_to_dict(cfg: GanConfig) -> dict[str, Any]:
    """Plain-dict form of a config (JSON- and weights_only-safe; search.ml.config convention)."""
    return _config.config_to_dict(cfg)


def config_from_dict(d: dict[str, Any]) -> GanConfig:
    """Rebuild a config from config_to_dict output; unknown keys are refused."""
    return _config.config_from_dict(GanConfig, d)


def differing_fields(a: GanConfig, b: GanConfig) -> list[str]:
    """Names of fields (other than operational ones) whose values differ between two configs."""
    da, db = config_to_dict(a), config_to_dict(b)
    return sorted(k for k in da if k not in OPERATIONAL_FIELDS and da[k] != db[k])


PRESETS: dict[str, GanConfig] = {
    # Unit tests: seconds on a CPU.
    "tiny-test": GanConfig(
        final_size=16, latent_dim=16, base_channels=8, max_channels=16, batch_size=4, steps_per_phase=3,
        checkpoint_every=5, sample_every=4, n_samples=4, fd_samples=8, mixed_precision=False,
    ),
    # A few hundred steps in minutes on 2 CPU cores (4 -> 8 -> 16 -> 32).
    "cpu-smoke": GanConfig(
        final_size=32, latent_dim=64, base_channels=16, max_channels=64, batch_size=16, steps_per_phase=50,
        checkpoint_every=50, sample_every=25, fd_every=0, fd_samples=64,
    ),
    # A real run on one GPU (4 -> 128, 11 phases of 2000 steps).
    "gpu-128": GanConfig(
        final_size=128, latent_dim=256, base_channels=64, max_channels=256, batch_size=32,
        steps_per_phase=2000, checkpoint_every=500, sample_every=250, fd_every=2000, fd_samples=512,
        num_workers=4,
    ),
    "gpu-256": GanConfig(
        final_size=256, latent_dim=256, base_channels=32, max_channels=256, batch_size=16,
        steps_per_phase=3000, checkpoint_every=500, sample_every=250, fd_every=3000, fd_samples=512,
        num_workers=6,
    ),
}  # fmt: skip


def preset(name: str, **overrides: Any) -> GanConfig:
    """A copy of a preset with fields overridden."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
