"""Shared fixtures for the GAN training tests: a handful of generated photos and the tiny config.

One torch thread per test comes from tests/training/conftest.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.ml.config import PRESETS, GanConfig


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A blocky colour image with a gradient, so crops and flips change pixels."""
    base = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    arr = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w].astype(np.int16)
    arr += np.linspace(0, 60, w, dtype=np.int16)[None, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six small JPEG/PNG photos of mixed aspect ratio."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(48, 32), (32, 48), (40, 40), (64, 40), (36, 50), (50, 36)]):
        p = folder / (f"p{i}.jpg" if i % 2 == 0 else f"p{i}.png")
        _photo(rng, w, h).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def tiny_cfg() -> GanConfig:
    """The tiny-test preset (16 px final size, a few channels, 3 steps per phase)."""
    return dataclasses.replace(PRESETS["tiny-test"])
