"""Decode and resize photos into uint8 tensors for the encoders (runs inside DataLoader workers)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

ResizeMode = Literal["squash", "crop"]


@dataclass(frozen=True)
class Preprocess:
    """How a photo becomes a model input: square size, resize mode and the per-channel normalisation."""

    image_size: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # "squash": the whole frame resized to size x size (aspect not kept, nothing cut off);
    # "crop": shorter side to size, then a centre crop (the usual ImageNet evaluation transform).
    resize: ResizeMode = "squash"


def open_rgb(path: str | Path, size: int) -> Image.Image:
    """Open a photo as RGB, letting the JPEG decoder downscale by 2/4/8 when it stays >= size."""
    try:
        with Image.open(path) as img:
            # draft() makes libjpeg decode at a reduced scale (DCT scaling): the biggest decode cost saver.
            img.draft("RGB", (size, size))
            img.load()
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {path!s}: {exc}") from exc


def fit_square(img: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    """Resize an RGB image to size x size according to the resize mode."""
    if mode == "squash":
        return img.resize((size, size), Image.Resampling.BILINEAR)
    width, height = img.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    # resize(box=...) crops in source coordinates, so only the kept region is resampled.
    box = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box)


def image_to_uint8(img: Image.Image, prep: Preprocess) -> torch.Tensor:
    """Convert a PIL image to a (3, S, S) uint8 tensor following prep."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    arr = np.asarray(fit_square(rgb, prep.image_size, prep.resize), dtype=np.uint8)  # (S, S, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, S, S)


def stack_images(images: Sequence[Image.Image], prep: Preprocess) -> torch.Tensor:
    """Preprocess PIL images into a (B, 3, S, S) uint8 batch."""
    return torch.stack([image_to_uint8(img, prep) for img in images])


class PathDataset(Dataset[tuple[torch.Tensor, float]]):
    """Files to (3, S, S) uint8 tensors, with the seconds each decode+resize took."""

    def __init__(self, paths: Sequence[str | Path], prep: Preprocess) -> None:
        self.paths = list(paths)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        img = open_rgb(self.paths[index], self.prep.image_size)
        tensor = image_to_uint8(img, self.prep)
        return tensor, time.perf_counter() - start


def limit_worker_threads(_worker_id: int) -> None:
    """DataLoader worker init: one intra-op thread, so decode workers do not fight the model for cores."""
    torch.set_num_threads(1)
