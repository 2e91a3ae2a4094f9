"""WGAN-GP losses, the encoder's inversion loss and the generator EMA."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.ml.gan import DownNet, Generator
from training.ml.layers import pixel_norm


def gradient_penalty(
    d: nn.Module, real: torch.Tensor, fake: torch.Tensor, res: int, alpha: float, eps: torch.Tensor
) -> torch.Tensor:
    """Mean (||grad D(x_hat)|| - 1)^2 at interpolates x_hat = eps*real + (1-eps)*fake; eps is (B,1,1,1)."""
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)  # (B, 3, H, W)
    score = d(x_hat, res, alpha)  # (B,)
    (grad,) = torch.autograd.grad(score.float().sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)  # (B,)
    return ((norm - 1.0) ** 2).mean()


@dataclass
class CriticLoss:
    """Discriminator loss and its parts (total is what is minimised)."""

    total: torch.Tensor
    wasserstein: torch.Tensor
    gp: torch.Tensor


def critic_loss(
    d_real: torch.Tensor, d_fake: torch.Tensor, gp: torch.Tensor, gp_weight: float, drift: float
) -> CriticLoss:
    """WGAN-GP critic loss with the progressive-growing paper's drift term keeping scores near 0."""
    d_real, d_fake = d_real.float(), d_fake.float()
    w = d_fake.mean() - d_real.mean()
    total = w + gp_weight * gp + drift * (d_real**2).mean()
    return CriticLoss(total=total, wasserstein=w, gp=gp)


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: -E[D(G(z))]."""
    return -d_fake.float().mean()


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay warmed up over the first steps so the average is not dominated by the random init."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter-wise; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


@dataclass
class EncoderLoss:
    """Encoder loss and its parts."""

    total: torch.Tensor
    latent: torch.Tensor
    image: torch.Tensor
    feature: torch.Tensor


def encoder_loss(
    e: DownNet,
    g: Generator,
    d: DownNet,
    real: torch.Tensor,
    z: torch.Tensor,
    res: int,
    alpha: float,
    recon_weight: float,
    feature_weight: float,
) -> EncoderLoss:
    """Latent reconstruction on generated images plus image and D-feature reconstruction on real photos.

    Only the encoder should be stepped with this loss; call backward(inputs=encoder params).
    """
    with torch.no_grad():
        fake = g(z, res, alpha)  # (B, 3, res, res)
    # G normalises its latent first, so the recoverable latent is the pixel-normalised z.
    latent = F.mse_loss(e(fake, res, alpha).float(), pixel_norm(z).float())
    rec = g(e(real, res, alpha), res, alpha)  # (B, 3, res, res)
    image = F.mse_loss(rec.float(), real.float())
    with torch.no_grad():
        f_real = d.features(real, res, alpha)  # (B, C0)
    feature = F.mse_loss(d.features(rec, res, alpha).float(), f_real.float())
    total = latent + recon_weight * (image + feature_weight * feature)
    return EncoderLoss(total=total, latent=latent, image=image, feature=feature)
