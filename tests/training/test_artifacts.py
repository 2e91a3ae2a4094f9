"""Sample grids and where a run's files live."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from training import artifacts


def test_grid_tiles_samples_row_major_and_scales_small_grids_up() -> None:
    samples = np.zeros((5, 4, 4, 3), dtype=np.uint8)  # (N, H, W, 3)
    for i in range(5):
        samples[i] = 40 * (i + 1)
    image = Image.open(io.BytesIO(artifacts.grid_png(samples)))
    # 3 columns x 2 rows of 4 px = 12 x 8 px, scaled x22 so the long side reaches 256.
    assert image.format == "PNG" and image.size == (264, 176)
    pixels = np.asarray(image.convert("RGB"))
    cell = 4 * 22
    assert pixels[0, 0, 0] == 40 and pixels[0, 2 * cell, 0] == 120 and pixels[cell, cell, 0] == 200
    assert pixels[cell, 2 * cell, 0] == 0  # the unused sixth cell stays black


def test_large_grids_are_not_scaled() -> None:
    image = Image.open(io.BytesIO(artifacts.grid_png(np.zeros((4, 128, 128, 3), dtype=np.uint8))))
    assert image.size == (256, 256)


def test_files_of_a_run_live_under_its_id(settings: Any) -> None:
    assert artifacts.checkpoint_dir(7) == Path(settings.CHECKPOINT_ROOT) / "7"
    path = artifacts.checkpoint_dir(7) / "step_00000010.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert artifacts.checkpoint_relpath(path) == "7/step_00000010.pt"
    assert artifacts.checkpoint_abspath("7/step_00000010.pt") == path
    assert artifacts.sample_relpath(7, 25) == "training/7/samples_step_00000025.png"
