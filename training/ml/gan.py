"""Progressive-growing generator, discriminator and encoder (Karras et al. 2018 style)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.ml.config import GanConfig
from training.ml.layers import (
    LRELU_SLOPE,
    ConvAct,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    channels_for,
)


def _levels(start_size: int, final_size: int) -> list[int]:
    n = int(math.log2(final_size // start_size))
    return [start_size * 2**i for i in range(n + 1)]


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2x average-pool downsampling."""
    return F.avg_pool2d(x, kernel_size=2)


def resize_to(x: torch.Tensor, res: int) -> torch.Tensor:
    """Area-downsample (or nearest-upsample) a (B, C, H, W) batch to res x res."""
    if x.shape[-1] == res and x.shape[-2] == res:
        return x
    mode = "area" if x.shape[-1] > res else "nearest"
    return F.interpolate(x, size=(res, res), mode=mode)


class Generator(nn.Module):
    """Latent (B, Z) -> image (B, 3, res, res) in about [-1, 1], growing from start_size to final_size."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.levels = _levels(cfg.start_size, cfg.final_size)
        self.latent_dim = cfg.latent_dim
        ch = [channels_for(r, cfg.final_size, cfg.base_channels, cfg.max_channels) for r in self.levels]
        s0 = cfg.start_size
        self.pn = PixelNorm()
        # Start block: latent -> (C0, s0, s0) via a dense layer (the paper's 4x4 transposed conv).
        self.dense = EqualizedLinear(cfg.latent_dim, ch[0] * s0 * s0, gain=math.sqrt(2) / 4)
        self.start_conv = ConvAct(ch[0], ch[0], norm=True)
        self.blocks = nn.ModuleList(
            nn.Sequential(ConvAct(ch[i - 1], ch[i], norm=True), ConvAct(ch[i], ch[i], norm=True))
            for i in range(1, len(self.levels))
        )
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, 3, 1, gain=1.0) for c in ch)
        self._ch0 = ch[0]

    def forward(self, z: torch.Tensor, res: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        level = self.levels.index(res if res is not None else self.levels[-1])
        s0 = self.levels[0]
        x = self.dense(self.pn(z)).reshape(z.shape[0], self._ch0, s0, s0)  # (B, C0, s0, s0)
        x = self.start_conv(self.pn(F.leaky_relu(x, LRELU_SLOPE)))
        prev = x
        for i in range(1, level + 1):
            prev = x
            x = self.blocks[i - 1](upsample(x))  # (B, C_i, 2H, 2W)
        rgb = self.to_rgb[level](x)  # (B, 3, res, res)
        if alpha < 1.0 and level > 0:
            # Fade-in: blend the new block with the upsampled output of the previous resolution.
            rgb_prev = upsample(self.to_rgb[level - 1](prev))
            rgb = alpha * rgb + (1.0 - alpha) * rgb_prev
        return rgb


class DownNet(nn.Module):
    """Image (B, 3, res, res) -> (B, out_dim); the shared shape of the discriminator and encoder."""

    def __init__(self, cfg: GanConfig, out_dim: int, mbstd: bool):
        super().__init__()
        self.levels = _levels(cfg.start_size, cfg.final_size)
        ch = [channels_for(r, cfg.final_size, cfg.base_channels, cfg.max_channels) for r in self.levels]
        s0 = cfg.start_size
        self.from_rgb = nn.ModuleList(
            nn.Sequential(EqualizedConv2d(3, c, 1), nn.LeakyReLU(LRELU_SLOPE)) for c in ch
        )
        # blocks[i-1] takes level i (resolution levels[i]) down to level i-1.
        self.blocks = nn.ModuleList(
            nn.Sequential(ConvAct(ch[i], ch[i]), ConvAct(ch[i], ch[i - 1]), nn.AvgPool2d(2))
            for i in range(1, len(self.levels))
        )
        self.mbstd = MinibatchStdDev() if mbstd else nn.Identity()
        extra = 1 if mbstd else 0
        self.final_conv = ConvAct(ch[0] + extra, ch[0])
        self.final_dense = EqualizedLinear(ch[0] * s0 * s0, ch[0])
        self.head = EqualizedLinear(ch[0], out_dim, gain=1.0)

    def features(self, x: torch.Tensor, res: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """Penultimate features (B, C0)."""
        level = self.levels.index(res if res is not None else x.shape[-1])
        h = self.from_rgb[level](x)  # (B, C_level, res, res)
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha < 1.0:
                # Fade-in: blend with the previous resolution's path fed a downsampled image.
                h = alpha * h + (1.0 - alpha) * self.from_rgb[level - 1](downsample(x))
            for i in range(level - 1, 0, -1):
                h = self.blocks[i - 1](h)
        h = self.final_conv(self.mbstd(h))  # (B, C0, s0, s0)
        return F.leaky_relu(self.final_dense(h.flatten(1)), LRELU_SLOPE)  # (B, C0)

    def forward(self, x: torch.Tensor, res: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        return self.head(self.features(x, res, alpha))


class Discriminator(DownNet):
    """WGAN critic: image -> (B,) score, with minibatch stddev before the last block."""

    def __init__(self, cfg: GanConfig):
        super().__init__(cfg, out_dim=1, mbstd=True)

    def forward(self, x: torch.Tensor, res: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        return super().forward(x, res, alpha).squeeze(1)  # (B,)


class Encoder(DownNet):
    """Inverts the generator: image -> latent (B, Z); no minibatch stddev so each embedding is per-image."""

    def __init__(self, cfg: GanConfig):
        super().__init__(cfg, out_dim=cfg.latent_dim, mbstd=False)


def build_models(cfg: GanConfig) -> tuple[Generator, Discriminator, Encoder, Generator]:
    """Generator, discriminator, encoder and the generator's EMA copy, seeded from cfg.seed."""
    # Fork the global RNG so building models neither depends on nor disturbs the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        g, d, e = Generator(cfg), Discriminator(cfg), Encoder(cfg)
        g_ema = Generator(cfg)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False).eval()
    return g, d, e, g_ema
