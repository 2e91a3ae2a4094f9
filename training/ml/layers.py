"""Building blocks from the progressive-growing paper: equalised LR, pixel norm, minibatch stddev."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2


def he_scale(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
    """He-init standard deviation applied at run time by the equalised-LR layers."""
    return gain / math.sqrt(fan_in)


class EqualizedConv2d(nn.Module):
    """Conv whose weights are stored N(0, 1) and scaled per forward, so Adam steps are equal per layer."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, padding: int = 0, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = he_scale(in_ch * kernel * kernel, gain)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning-rate trick."""

    def __init__(self, in_f: int, out_f: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f))
        self.bias = nn.Parameter(torch.zeros(out_f))
        self.scale = he_scale(in_f, gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit RMS (unit L2 norm / sqrt(C))."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Functional PixelNorm over dim 1."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def _group_size(batch: int, wanted: int) -> int:
    # The largest group <= wanted that divides the batch, so any batch size works.
    for g in range(min(wanted, batch), 0, -1):
        if batch % g == 0:
            return g
    return 1


class MinibatchStdDev(nn.Module):
    """Append one channel holding the mean feature stddev within each group of samples."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        g = _group_size(b, self.group_size)
        y = x.float().reshape(g, -1, c, h, w)  # (G, B/G, C, H, W)
        y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # (B/G, C, H, W)
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # (B/G,)
        y = y.repeat(g).reshape(b, 1, 1, 1).expand(b, 1, h, w)  # (B, 1, H, W)
        return torch.cat([x, y], dim=1)  # (B, C+1, H, W)


class ConvAct(nn.Sequential):
    """Equalised 3x3 conv + LeakyReLU, optionally followed by pixel norm."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, norm: bool = False):
        layers: list[nn.Module] = [
            EqualizedConv2d(in_ch, out_ch, kernel, padding=kernel // 2),
            nn.LeakyReLU(LRELU_SLOPE),
        ]
        if norm:
            layers.append(PixelNorm())
        super().__init__(*layers)


def channels_for(res: int, final_size: int, base_channels: int, max_channels: int) -> int:
    """Feature maps at a resolution: base_channels at final_size, doubling per halving, capped."""
    doublings = int(math.log2(final_size // res))
    return min(max_channels, base_channels * 2**doublings)
