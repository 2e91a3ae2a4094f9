"""Files on disk under FLATSITE_DATA_DIR: generated names, atomic writes, safe removal."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings


def new_name(suffix: str) -> str:
    """A generated file name that reveals nothing about the upload."""
    return f"{uuid.uuid4().hex}{suffix}"


def private_path(relative: str) -> Path:
    """Absolute path of a private file (originals: never served)."""
    return _inside(Path(settings.PRIVATE_ROOT), relative)


def media_path(relative: str) -> Path:
    """Absolute path of a served derivative."""
    return _inside(Path(settings.MEDIA_ROOT), relative)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise ValueError(f"path escapes its storage root: {relative!r}")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that readers see the whole file or none of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def copy_into(path: Path, source: Path) -> None:
    """Copy a file into storage atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


def remove_quietly(*paths: Path) -> None:
    """Remove files that may already be gone (cleanup after a failed write)."""
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
