"""Progress artefacts: sample grids from fixed latents and FD-Lite against a fixed set of real photos."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from training.ml.config import GanConfig
from training.ml.data import ImageFolderData, tensor_to_uint8
from training.ml.fd import frechet_distance
from training.ml.gan import resize_to
from training.ml.state import fixed_latents

FeatureFn = Callable[[torch.Tensor], np.ndarray]  # CPU (N, 3, H, W) float in [-1, 1] -> (N, D)
_FD_LATENT_SALT = 0xFD_1173
_CHUNK = 64


@torch.no_grad()
def generate(
    g: nn.Module, z: torch.Tensor, res: int, alpha: float, device: torch.device, chunk: int = _CHUNK
) -> torch.Tensor:
    """Generator output for latents z, in chunks, as a CPU float32 (N, 3, res, res) tensor."""
    out = [g(z[i : i + chunk].to(device), res, alpha).float().cpu() for i in range(0, z.shape[0], chunk)]
    return torch.cat(out).clamp_(-1.0, 1.0)


def sample_grid(g: nn.Module, z: torch.Tensor, res: int, alpha: float, device: torch.device) -> np.ndarray:
    """(N, res, res, 3) uint8 images for the fixed latents z."""
    return tensor_to_uint8(generate(g, z, res, alpha, device))


def _features(fn: FeatureFn, images: torch.Tensor) -> np.ndarray:
    feats = [np.asarray(fn(images[i : i + _CHUNK]), dtype=np.float64) for i in range(0, len(images), _CHUNK)]
    return np.concatenate(feats)


class FdMonitor:
    """FD-Lite over time: the same real photos (un-augmented) and the same latents at every measurement."""

    def __init__(self, cfg: GanConfig, dataset: Dataset[torch.Tensor], fn: FeatureFn):
        n_data = len(dataset)  # type: ignore[arg-type]
        n = min(cfg.fd_samples, n_data)
        if n < 2:
            raise ValueError("FD-Lite needs at least 2 photos")
        g = torch.Generator().manual_seed(cfg.seed + 17)
        self.indices = torch.randperm(n_data, generator=g)[:n].tolist()
        self.dataset, self.fn = dataset, fn
        self.latents = fixed_latents(cfg, n, salt=_FD_LATENT_SALT)  # (n, Z)
        self._real: dict[int, np.ndarray] = {}  # resolution -> real features, computed once per resolution

    def _real_images(self) -> torch.Tensor:
        items = []
        for i in self.indices:
            if isinstance(self.dataset, ImageFolderData):
                items.append(self.dataset.load(i, None))
            else:
                item = self.dataset[i]
                items.append(item[0] if isinstance(item, tuple | list) else item)
        return torch.stack(items).float()  # (n, 3, S, S)

    def real_features(self, res: int) -> np.ndarray:
        """Features of the real photos downsampled to res (cached per resolution)."""
        if res not in self._real:
            self._real[res] = _features(self.fn, resize_to(self._real_images(), res))
        return self._real[res]

    def measure(self, g: nn.Module, res: int, alpha: float, device: torch.device) -> float:
        """FD between real-photo features and EMA-generator sample features at the current resolution."""
        fake = generate(g, self.latents, res, alpha, device)
        return frechet_distance(self.real_features(res), _features(self.fn, fake))
