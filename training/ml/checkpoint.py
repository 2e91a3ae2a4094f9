"""Atomic, code-free checkpoints: plain dicts of tensors and primitives, loaded with weights_only=True."""

from __future__ import annotations

import os
import pickle  # only for UnpicklingError: loading is torch.load(weights_only=True)  # nosec B403
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "flatsite-gan/1"
_NAME = re.compile(r"^step_(\d{8,})\.pt$")
REQUIRED_KEYS = frozenset({"format", "config", "step", "generator", "generator_ema", "encoder"})


class CheckpointError(ValueError):
    """A checkpoint file is unsafe, corrupt or not a flatsite GAN checkpoint."""


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint written after `step` steps."""
    return f"step_{step:08d}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (temp + fsync + os.replace): a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with torch.load(weights_only=True); files that would run code are refused."""
    try:
        state = torch.load(Path(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing {path}: it holds objects other than weights ({exc})") from exc
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    missing = REQUIRED_KEYS - set(state)
    if missing:
        raise CheckpointError(f"{path} lacks keys {sorted(missing)}")
    return state


def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every completed checkpoint in a folder, oldest first."""
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint in a folder, or None."""
    found = list_checkpoints(checkpoint_dir)
    return found[-1][1] if found else None


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (at least one is always kept)."""
    found = list_checkpoints(checkpoint_dir)
    for _, p in found[: max(0, len(found) - max(1, keep))]:
        p.unlink(missing_ok=True)


def remove_stale_temp_files(checkpoint_dir: Path) -> None:
    """Remove temp files a killed save left behind (only call when no writer is running)."""
    directory = Path(checkpoint_dir)
    if directory.is_dir():
        for p in directory.glob(".step_*.pt.*.tmp"):
            p.unlink(missing_ok=True)
