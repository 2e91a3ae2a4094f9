"""Unpack uploads (single files or zips) into a private staging folder, enforcing every limit first."""

from __future__ import annotations

import shutil
import stat
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from search.ml.images.normalise import ImageRejected, check_extension

ZIP_SUFFIXES = (".zip",)
CHUNK = 1 << 16


@dataclass(frozen=True)
class UploadLimits:
    """Limits for one upload batch."""

    max_files: int = 500
    max_file_bytes: int = 25 * 1024 * 1024
    max_zip_bytes: int = 500 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_ratio: float = 200.0
    max_name_length: int = 255


@dataclass
class StagedFile:
    """One file ready for ingestion: the name the user gave and where its bytes are now."""

    name: str
    path: Path


@dataclass
class Staged:
    """Outcome of staging a batch: accepted files and per-entry rejections."""

    files: list[StagedFile] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class Readable(Protocol):
    """Any binary stream: an open file, BytesIO, or a Django UploadedFile."""

    def read(self, size: int = ..., /) -> bytes: ...


class UploadRejected(ValueError):
    """The whole upload is refused (e.g. too many files); nothing was stored."""


def clean_name(raw: str, max_length: int = 255) -> str:
    """Return a display-safe base name or raise ValueError for dangerous names."""
    if "\x00" in raw:
        raise ValueError("file name contains a NUL byte")
    if any(unicodedata.category(ch) in ("Cf", "Cc") for ch in raw):
        raise ValueError("file name contains control or bidirectional-override characters")
    normalised = raw.replace("\\", "/")
    pure = PurePosixPath(normalised)
    if pure.is_absolute() or (len(normalised) > 1 and normalised[1] == ":"):
        raise ValueError("absolute path in archive")
    if ".." in pure.parts:
        raise ValueError("path traversal ('..') in archive")
    base = pure.name
    if not base or base in (".", ".."):
        raise ValueError("empty file name")
    if len(base) > max_length or len(raw) > 4 * max_length:
        raise ValueError("file name too long")
    return base


def new_staging_dir(root: Path) -> Path:
    """Create a fresh private staging folder for one batch."""
    path = root / uuid.uuid4().hex
    path.mkdir(parents=True, exist_ok=False)
    return path


def stage_stream(stream: Readable, name: str, staging: Path, limits: UploadLimits) -> Path:
    """Copy an uploaded stream into staging, refusing it past the size limit."""
    target = staging / uuid.uuid4().hex
    written = 0
    with open(target, "wb") as out:
        while chunk := stream.read(CHUNK):
            written += len(chunk)
            cap = limits.max_zip_bytes if name.lower().endswith(ZIP_SUFFIXES) else limits.max_file_bytes
            if written > cap:
                out.close()
                target.unlink()
                raise ValueError(f"file too large (limit {cap} bytes)")
            out.write(chunk)
    return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_zip_entries(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    files = [i for i in infos if not i.is_dir()]
    if len(files) > limits.max_files:
        raise UploadRejected(f"archive has {len(files)} files; the limit is {limits.max_files}")
    declared = sum(i.file_size for i in files)
    if declared > limits.max_total_bytes:
        raise UploadRejected(
            f"archive would expand to {declared} bytes; the limit is {limits.max_total_bytes}"
        )


def expand_zip(archive: Path, staging: Path, limits: UploadLimits, staged: Staged) -> None:
    """Extract image entries of a zip into staging under generated names, checking limits first."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_zip_entries(infos, limits)
            seen: set[str] = set()
            for info in infos:
                if info.is_dir():
                    continue
                _expand_entry(zf, info, staging, limits, staged, seen)
    except zipfile.BadZipFile as exc:
        raise UploadRejected(f"not a valid zip archive ({exc})") from exc
    if len(staged.files) > limits.max_files:
        raise UploadRejected(f"too many files ({len(staged.files)}; limit {limits.max_files})")


def _expand_entry(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    staging: Path,
    limits: UploadLimits,
    staged: Staged,
    seen: set[str],
) -> None:
    raw = getattr(info, "orig_filename", info.filename) or info.filename
    shown = raw.replace("\x00", "?")[:200]
    try:
        name = clean_name(raw, limits.max_name_length)
        if _is_symlink(info):
            raise ValueError("symbolic links are not accepted")
        if name.lower().endswith(ZIP_SUFFIXES):
            raise ValueError("nested archives are not accepted")
        check_extension(name)
        if name.lower() in seen:
            raise ValueError("duplicate entry name in archive")
        if info.flag_bits & 0x1:
            raise ValueError("encrypted entries are not accepted")
        seen.add(name.lower())
        target = staging / uuid.uuid4().hex
        _extract_bounded(zf, info, target, limits)
    except (ValueError, ImageRejected, NotImplementedError, zipfile.BadZipFile, RuntimeError, OSError) as exc:
        staged.rejected.append((shown, str(exc)))
        return
    staged.files.append(StagedFile(name=name, path=target))


def _extract_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: UploadLimits) -> None:
    # The header's sizes may lie: count real bytes while streaming and stop at the limit.
    cap = min(limits.max_file_bytes, max(info.compress_size, 1) * limits.max_ratio)
    if info.file_size > limits.max_file_bytes:
        raise ValueError(f"entry too large ({info.file_size} bytes; limit {limits.max_file_bytes})")
    if info.file_size > cap:  # an honest header already tells: refuse before inflating a byte
        raise ValueError("entry expands beyond the size or compression-ratio limit (zip bomb?)")
    written = 0
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > cap:
                out.close()
                target.unlink()
                raise ValueError("entry expands beyond the size or compression-ratio limit (zip bomb?)")
            out.write(chunk)


def discard_staging(staging: Path) -> None:
    """Remove a staging folder and everything in it."""
    shutil.rmtree(staging, ignore_errors=True)
