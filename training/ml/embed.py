"""Use a trained run: embed photos with its encoder, or draw images from its EMA generator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.ml.checkpoint import load_checkpoint
from training.ml.config import GanConfig, config_from_dict, phase_at
from training.ml.data import image_to_tensor, square_crop, tensor_to_uint8
from training.ml.gan import Encoder, Generator
from training.ml.state import pick_device


@dataclass(frozen=True)
class EncoderInfo:
    """Mirrors search.ml.encoders.registry.EncoderInfo: name, embedding dim, input image side."""

    name: str
    dim: int
    image_size: int


def _reached(cfg: GanConfig, step: int) -> tuple[int, float]:
    # The resolution and fade the checkpoint's networks were last trained at.
    res, alpha, _ = phase_at(cfg, max(step - 1, 0))
    return res, alpha


class GanEncoder:
    """A trained GAN encoder as a photo embedder: PIL images -> L2-normalised (N, embed_dim) float32."""

    def __init__(self, net: Encoder, cfg: GanConfig, res: int, alpha: float, device: torch.device, name: str):
        self.net = net.to(device).eval()
        self.cfg, self.res, self.alpha, self.device = cfg, res, alpha, device
        self.info = EncoderInfo(name=name, dim=cfg.latent_dim, image_size=res)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Centre-cropped (N, 3, res, res) tensor in [-1, 1]."""
        return torch.stack([image_to_tensor(square_crop(im.convert("RGB"), self.res)) for im in images])

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of the photos."""
        if len(images) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        out = []
        for i in range(0, len(images), batch_size):
            x = self.preprocess(images[i : i + batch_size]).to(self.device)  # (b, 3, res, res)
            out.append(torch.nn.functional.normalize(self.net(x, self.res, self.alpha).float(), dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float32)


def load_gan_encoder(checkpoint: Path, device: str | torch.device | None = None) -> GanEncoder:
    """Load the encoder of a checkpoint at the resolution the run had reached."""
    ck = load_checkpoint(checkpoint)
    cfg = config_from_dict(ck["config"])
    with torch.random.fork_rng(devices=[]):  # building the net must not disturb the caller's RNG
        net = Encoder(cfg)
    net.load_state_dict(ck["encoder"])
    res, alpha = _reached(cfg, int(ck["step"]))
    name = f"gan-encoder-{Path(checkpoint).stem}-{res}px"
    return GanEncoder(net, cfg, res, alpha, pick_device(device), name)


class GanGenerator:
    """The EMA generator of a checkpoint: latents or seeds -> uint8 images."""

    def __init__(self, net: Generator, cfg: GanConfig, res: int, alpha: float, device: torch.device):
        self.net = net.to(device).eval()
        self.cfg, self.res, self.alpha, self.device = cfg, res, alpha, device

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, Z) latents -> (N, res, res, 3) uint8 images."""
        zt = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        return tensor_to_uint8(self.net(zt, self.res, self.alpha))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n random images (N, res, res, 3) uint8, reproducible from seed."""
        z = torch.randn(n, self.cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self.decode(z)


def load_generator(checkpoint: Path, device: str | torch.device | None = None) -> GanGenerator:
    """Load the EMA generator of a checkpoint at the resolution the run had reached."""
    ck = load_checkpoint(checkpoint)
    cfg = config_from_dict(ck["config"])
    with torch.random.fork_rng(devices=[]):
        net = Generator(cfg)
    net.load_state_dict(ck["generator_ema"])
    res, alpha = _reached(cfg, int(ck["step"]))
    return GanGenerator(net, cfg, res, alpha, pick_device(device))
