"""Encoder base class: batching, device placement, normalisation, pooling and timing."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from search.ml.images.loading import PathDataset, Preprocess, limit_worker_threads, stack_images

Pooling = Literal["avg", "gem"]


class EncoderUnavailable(RuntimeError):
    """An encoder cannot be built here (weights or package missing); the message says how to provide it."""


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder produces: its registry name, vector size and square input size."""

    name: str
    dim: int
    image_size: int


@dataclass
class ExtractTimings:
    """Where extraction time went; pass one to embed_paths/embed_images to accumulate into it."""

    images: int = 0
    decode_s: float = 0.0  # decode + resize seconds, summed over workers (CPU time of the loader side)
    wait_s: float = 0.0  # seconds the main process waited for decoded batches
    model_s: float = 0.0  # upload + normalise + forward + pooling + download
    total_s: float = 0.0


def pool_features(fmap: torch.Tensor, pooling: Pooling, gem_p: float = 3.0) -> torch.Tensor:
    """Global pooling of a (B, C, H, W) map to (B, C), in float32."""
    fmap = fmap.float()
    if pooling == "avg":
        return fmap.mean(dim=(2, 3))
    # GeM (generalised mean): between average (p=1) and max pooling; needs non-negative inputs.
    return fmap.clamp_min(1e-6).pow(gem_p).mean(dim=(2, 3)).pow(1.0 / gem_p)


class Encoder(ABC):
    """Images to (N, dim) float32 L2-normalised vectors; subclasses implement forward_features."""

    info: EncoderInfo
    device: torch.device

    def __init__(self, info: EncoderInfo, prep: Preprocess, device: torch.device) -> None:
        self.info = info
        self.prep = prep
        self.device = device
        shape = (1, 3, 1, 1)
        # Folded normalisation: x_norm = x_uint8 * scale + shift, from the encoder's mean/std.
        std = torch.tensor(prep.std, dtype=torch.float32).view(shape)
        mean = torch.tensor(prep.mean, dtype=torch.float32).view(shape)
        self._scale = (1.0 / (255.0 * std)).to(device)
        self._shift = (-mean / std).to(device)

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map a normalised (B, 3, S, S) channels-last batch to (B, dim) pooled, unnormalised features."""

    def embed_uint8(self, batch: torch.Tensor, timings: ExtractTimings | None = None) -> np.ndarray:
        """Embed a (B, 3, S, S) uint8 batch; returns (B, dim) float32 with unit rows."""
        start = time.perf_counter()
        x = self.normalise(batch)
        with torch.inference_mode(), self._autocast():
            feats = self.forward_features(x).float()  # (B, dim)
        feats = F.normalize(feats, dim=1)
        out = feats.cpu().numpy().astype(np.float32, copy=False)
        if timings is not None:
            timings.model_s += time.perf_counter() - start
            timings.images += len(out)
        return out

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> normalised float32 on the encoder's device, channels-last."""
        x = batch.to(self.device, non_blocking=True).float()  # (B, 3, S, S)
        return (x * self._scale + self._shift).contiguous(memory_format=torch.channels_last)

    def prep_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> the normalised (B, 3, S, S) model input (for inspection and tests)."""
        return self.normalise(stack_images(images, self.prep))

    def _autocast(self) -> torch.autocast:
        # float16 only on CUDA; CPU stays float32 (deterministic for the same batch).
        return torch.autocast(
            device_type=self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"
        )

    def embed_images(
        self, images: Sequence[Image.Image], batch_size: int = 32, timings: ExtractTimings | None = None
    ) -> np.ndarray:
        """Embed in-memory PIL images (any mode; converted to RGB); returns (N, dim) float32."""
        out = np.empty((len(images), self.info.dim), dtype=np.float32)
        for lo in range(0, len(images), batch_size):
            start = time.perf_counter()
            batch = stack_images(images[lo : lo + batch_size], self.prep)  # (B, 3, S, S)
            if timings is not None:
                timings.decode_s += time.perf_counter() - start
            out[lo : lo + len(batch)] = self.embed_uint8(batch, timings)
        return out

    def embed_paths(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 32,
        num_workers: int = 0,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        timings: ExtractTimings | None = None,
    ) -> np.ndarray:
        """Embed image files (decoded in a DataLoader); (N, dim), or only the rows done if stopped."""
        total = len(paths)
        out = np.empty((total, self.info.dim), dtype=np.float32)
        loader = self._loader(paths, batch_size, num_workers)
        done = 0
        start = time.perf_counter()
        batches = iter(loader)
        while done < total:
            if should_stop is not None and should_stop():
                break
            wait_start = time.perf_counter()
            batch, decode_s = next(batches)  # (B, 3, S, S) uint8, (B,) seconds
            if timings is not None:
                timings.wait_s += time.perf_counter() - wait_start
                timings.decode_s += float(decode_s.sum())
            out[done : done + len(batch)] = self.embed_uint8(batch, timings)
            done += len(batch)
            if on_step is not None:
                on_step(done, total)
        del batches  # shuts worker processes down promptly when stopped early
        if timings is not None:
            timings.total_s += time.perf_counter() - start
        return out[:done]

    def _loader(
        self, paths: Sequence[str | Path], batch_size: int, num_workers: int
    ) -> DataLoader[tuple[torch.Tensor, float]]:
        return DataLoader(
            PathDataset(paths, self.prep),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=limit_worker_threads if num_workers > 0 else None,
        )
