"""Photo dataset and a resumable, seed-determined infinite DataLoader stream."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly in a folder, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_square(path: Path, size: int, rng: random.Random | None = None) -> Image.Image:
    """RGB square crop of side `size`: shorter side resized, crop centred (or random + h-flip with rng)."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that still covers `size`
        rgb = img.convert("RGB")
    return square_crop(rgb, size, rng)


def square_crop(img: Image.Image, size: int, rng: random.Random | None = None) -> Image.Image:
    """Resize the shorter side to `size` and crop a square; rng enables random crop and flip."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if rng is None:
        left, top = (nw - size) // 2, (nh - size) // 2
    else:
        left, top = rng.randint(0, nw - size), rng.randint(0, nh - size)
    img = img.crop((left, top, left + size, top + size))
    if rng is not None and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> (3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8."""
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()


class ImageFolderData(Dataset[torch.Tensor]):
    """Photos as (3, size, size) tensors in [-1, 1]; augmentation: random crop along long side + h-flip."""

    def __init__(self, paths: Sequence[Path], size: int, augment: bool = True):
        if not paths:
            raise ValueError("no photos to train on")
        self.paths = [Path(p) for p in paths]
        self.size = size
        self.augment = augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        # Plain indexing draws augmentation from torch's RNG (seeded per DataLoader worker).
        seed = int(torch.randint(0, 2**62, ()).item()) if self.augment else None
        return self.load(index, seed)

    def load(self, index: int, seed: int | None) -> torch.Tensor:
        """Photo `index`, augmented deterministically from `seed` (None: no augmentation)."""
        rng = random.Random(seed) if self.augment and seed is not None else None  # noqa: S311 (augmentation, not crypto)  # nosec B311
        return image_to_tensor(load_square(self.paths[index], self.size, rng))


def make_dataset(paths: Sequence[Path], size: int, augment: bool = True) -> ImageFolderData:
    """Dataset of RGB photos resized/cropped to size x size, in [-1, 1], optionally flip/crop-augmented."""
    return ImageFolderData(paths, size, augment)


class SampleStream(Dataset[torch.Tensor]):
    """Maps a global sample position to (epoch permutation, augmentation seed), so the stream is a pure
    function of (seed, position): a resumed run sees exactly the photos an uninterrupted one would."""

    def __init__(self, dataset: Dataset[torch.Tensor], seed: int):
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.seed = seed
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def _index(self, pos: int) -> int:
        epoch, k = divmod(pos, self.n)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return int(self._perm[k])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, pos: int) -> torch.Tensor:
        index = self._index(pos)
        if isinstance(self.dataset, ImageFolderData):
            return self.dataset.load(index, (self.seed * 7_919_003 + pos) % 2**63)
        item = self.dataset[index]
        return item[0] if isinstance(item, tuple | list) else item


class _CountFrom(Sampler[int]):
    """Infinite sampler yielding start, start+1, ..."""

    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _seed_worker(worker_id: int) -> None:
    # Torch seeds each worker; keep python's RNG distinct too for user datasets that use it.
    random.seed(torch.initial_seed() % 2**32 + worker_id)


def batch_stream(
    dataset: Dataset[torch.Tensor],
    batch_size: int,
    seed: int,
    start: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[torch.Tensor]:
    """Endless (B, 3, H, W) batches beginning at global sample position `start`."""
    loader = DataLoader(
        SampleStream(dataset, seed),
        batch_size=batch_size,
        sampler=_CountFrom(start),
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)
