"""A trained run's GAN encoder as a search encoder (registry entry `gan-run-<id>`)."""

from __future__ import annotations

from pathlib import Path

import torch

from search.ml.encoders.base import Encoder, EncoderInfo
from search.ml.images.loading import Preprocess
from training.ml import GanEncoder, load_gan_encoder

# The GAN sees photos scaled to [-1, 1]: (x / 255 - 0.5) / 0.5.
GAN_MEAN = (0.5, 0.5, 0.5)
GAN_STD = (0.5, 0.5, 0.5)


class GanSearchEncoder(Encoder):
    """Wraps training.ml's GanEncoder behind search.ml's Encoder API (embed_paths, embed_images, ...)."""

    def __init__(self, name: str, gan: GanEncoder, device: torch.device) -> None:
        # Centre crop, like the training data; the input side is the resolution the run reached.
        prep = Preprocess(image_size=gan.res, mean=GAN_MEAN, std=GAN_STD, resize="crop")
        super().__init__(EncoderInfo(name, gan.info.dim, gan.res), prep, device)
        self.gan = gan

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> (B, latent_dim)."""
        out: torch.Tensor = self.gan.net(x, self.gan.res, self.gan.alpha)  # (B, Z)
        return out


def build_gan_encoder(name: str, checkpoint: Path, device: torch.device) -> GanSearchEncoder:
    """Load a checkpoint's encoder onto a device as a search encoder."""
    return GanSearchEncoder(name, load_gan_encoder(checkpoint, device), device)
