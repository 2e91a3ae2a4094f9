"""Zip handling: bombs, path tricks and limits are refused before anything escapes staging."""

from __future__ import annotations

import io
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from search.uploads import Staged, UploadLimits, UploadRejected, clean_name, expand_zip
from tests import images


def _zip(tmp_path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], name: str = "a.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries:
            zf.writestr(entry, data)
    return path


def _expand(tmp_path: Path, archive: Path, limits: UploadLimits | None = None) -> tuple[Path, Staged]:
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = Staged()
    started = time.monotonic()
    expand_zip(archive, staging, limits or UploadLimits(), staged)
    assert time.monotonic() - started < 5
    return staging, staged


def _only_inside(tmp_path: Path, staging: Path) -> None:
    outside = [
        p for p in tmp_path.rglob("*") if p.is_file() and staging not in p.parents and p.suffix != ".zip"
    ]
    assert outside == []


def test_good_zip_extracts_images_under_generated_names(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("rooms/kitchen.jpg", images.jpeg(1)), ("bath.png", images.png(2))])
    staging, staged = _expand(tmp_path, archive)
    assert sorted(f.name for f in staged.files) == ["bath.png", "kitchen.jpg"]
    assert all(f.path.parent == staging and f.path.name != f.name for f in staged.files)


SLIP_NAMES = [
    "../evil.jpg",
    "../../etc/evil.jpg",
    "/abs/evil.jpg",
    "/evil.jpg",
    "C:\\evil.jpg",
    "c:/evil.jpg",
    "..\\..\\evil.jpg",
    "a/../../evil.jpg",
    "rtl\u202egpj.exe",
    "nul\x00.jpg",
    "x" * 300 + ".jpg",
    "zero\u200bwidth.jpg",
    "\\\\server\\share\\evil.jpg",
    "C:evil.jpg",
    "./../evil.jpg",
]


@pytest.mark.parametrize("name", SLIP_NAMES)
def test_zip_slip_names_are_rejected_and_nothing_escapes(tmp_path: Path, name: str) -> None:
    info = zipfile.ZipInfo("placeholder.jpg")
    info.filename = name  # bypass zipfile's own sanitising, as a hostile archive would
    archive = _zip(tmp_path, [(info, images.jpeg(3))])
    staging, staged = _expand(tmp_path, archive)
    assert staged.files == []
    assert len(staged.rejected) == 1
    _only_inside(tmp_path, staging)


def test_symlink_entries_are_rejected(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path, [(info, b"/etc/passwd")])
    _, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "symbolic links" in staged.rejected[0][1]


def test_duplicate_entry_names_keep_only_the_first(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", images.jpeg(4)), ("sub/a.jpg", images.jpeg(5))])
    _, staged = _expand(tmp_path, archive)
    assert len(staged.files) == 1 and "duplicate entry" in staged.rejected[0][1]


def test_compression_ratio_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("bomb.jpg", b"\0" * (20 * 1024 * 1024))])
    staging, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "zip bomb" in staged.rejected[0][1]
    assert list(staging.iterdir()) == []


def test_lying_header_sizes_are_caught_while_streaming(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", b"\1\2\3" * 400_000)])
    data = bytearray(archive.read_bytes())
    # Rewrite the declared uncompressed size (central directory) to a tiny number.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    _, staged = _expand(tmp_path, archive, UploadLimits(max_ratio=1000))
    assert staged.files == []
    assert staged.rejected


def test_nested_zips_are_not_expanded(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("a.jpg", images.jpeg(6))
    archive = _zip(tmp_path, [("inner.zip", inner.getvalue())])
    _, staged = _expand(tmp_path, archive)
    assert staged.files == [] and "nested archives" in staged.rejected[0][1]


def test_too_many_entries_refuses_the_whole_archive_before_extraction(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(100_000):
            zf.writestr(f"{i}.jpg", b"")
    staging = tmp_path / "staging"
    staging.mkdir()
    started = time.monotonic()
    with pytest.raises(UploadRejected, match="100000 files"):
        expand_zip(path, staging, UploadLimits(max_files=500), Staged())
    assert time.monotonic() - started < 5
    assert list(staging.iterdir()) == []


def test_declared_total_size_over_the_limit_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("a.jpg", b"\0" * 3000), ("b.jpg", b"\0" * 3000)])
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(UploadRejected, match="expand to"):
        expand_zip(archive, staging, UploadLimits(max_total_bytes=4000), Staged())


def test_not_a_zip_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "fake.zip"
    path.write_bytes(b"definitely not a zip")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(UploadRejected, match="not a valid zip"):
        expand_zip(path, staging, UploadLimits(), Staged())


@pytest.mark.parametrize("name", ["kitchen.jpg", "dir/sub/bath.png", "dir\\win.jpg"])
def test_clean_name_keeps_the_base_name(name: str) -> None:
    assert "/" not in clean_name(name) and "\\" not in clean_name(name)


def test_duplicate_names_differing_only_in_case_keep_only_the_first(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("Kitchen.JPG", images.jpeg(7)), ("kitchen.jpg", images.jpeg(8))])
    _, staged = _expand(tmp_path, archive)
    assert [f.name for f in staged.files] == ["Kitchen.JPG"] and "duplicate entry" in staged.rejected[0][1]


def _opened_entries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(getattr(name, "filename", name))
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


@pytest.mark.parametrize(
    ("entry", "limits"),
    [
        (("ratio.jpg", b"\0" * (4 * 1024 * 1024)), UploadLimits()),  # honest header, 1000:1
        (("big.jpg", b"\1\2\3" * 400_000), UploadLimits(max_file_bytes=1_000_000, max_ratio=10**6)),
    ],
)
def test_bombs_declared_in_the_header_are_refused_before_any_byte_is_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: tuple[str, bytes], limits: UploadLimits
) -> None:
    archive = _zip(tmp_path, [entry, ("fine.jpg", images.jpeg(9))])
    opened = _opened_entries(monkeypatch)
    staging, staged = _expand(tmp_path, archive, limits)
    assert [f.name for f in staged.files] == ["fine.jpg"] and len(staged.rejected) == 1
    assert opened == ["fine.jpg"]  # the bomb entry was never opened
    assert len(list(staging.iterdir())) == 1
