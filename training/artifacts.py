"""Where a run's files live (checkpoints, sample grids) and how sample grids become PNGs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

GRID_MIN_SIDE = 256  # small early grids (4 px images) are scaled up so the page can show them


def checkpoint_dir(run_id: int) -> Path:
    """Folder of a run's checkpoints: CHECKPOINT_ROOT/<run id>/."""
    return Path(settings.CHECKPOINT_ROOT) / str(run_id)


def checkpoint_relpath(path: Path) -> str:
    """A checkpoint path as stored in the database (relative to CHECKPOINT_ROOT)."""
    return str(Path(path).resolve().relative_to(Path(settings.CHECKPOINT_ROOT).resolve()))


def checkpoint_abspath(relpath: str) -> Path:
    """The file of a stored checkpoint path."""
    return Path(settings.CHECKPOINT_ROOT) / relpath


def sample_relpath(run_id: int, step: int) -> str:
    """Media-relative path of the sample grid written after `step` steps."""
    return f"training/{run_id}/samples_step_{step:08d}.png"


def grid_png(samples: np.ndarray, min_side: int = GRID_MIN_SIDE) -> bytes:
    """(N, H, W, 3) uint8 images -> PNG of a near-square grid, nearest-neighbour upscaled to >= min_side."""
    n, h, w, _ = samples.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)  # (rows*H, cols*W, 3)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = samples[i]
    image = Image.fromarray(grid)
    scale = max(1, math.ceil(min_side / max(image.size)))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
