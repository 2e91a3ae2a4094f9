"""import_photos as a stream: nested trees in chunked jobs, a lazy walk, re-runs, interruptions, reports."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from search.listings import imports, ingest
from search.listings.import_plan import PlannedFile, PlannedListing, Skipped, plan_stream, walk_files
from search.models import Job, Listing, Photo
from tests import images
from tests.search.listings.test_import_photos import _write, _zip

# Three top subfolders, files down to three levels, 12 distinct photos in all.
TREE = {
    "flat-a/a0.jpg": 1,
    "flat-a/rooms/a1.jpg": 2,
    "flat-a/rooms/a2.jpg": 3,
    "flat-a/rooms/up/a3.jpg": 4,
    "flat-a/rooms/up/a4.jpg": 5,
    "flat-b/b0.jpg": 6,
    "flat-b/b1.jpg": 7,
    "flat-b/x/y/b2.jpg": 8,
    "flat-b/x/y/b3.jpg": 9,
    "flat-b/x/y/b4.jpg": 10,
    "flat-c/z/c0.jpg": 11,
    "flat-c/z/c1.jpg": 12,
}


def _tree(root: Path) -> Path:
    for name, seed in TREE.items():
        _write(root / name, images.jpeg(seed, size=(96, 72)))
    return root


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len({r["file"] for r in rows}), "a file has more than one row"
    return {r["file"]: r for r in rows}


def _import(root: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_photos", str(root), "--inline", *args, stdout=out)
    return out.getvalue()


def _ingest_jobs() -> list[int]:
    return sorted(Job.objects.filter(kind=Job.Kind.INGEST).values_list("total", flat=True))


def _assert_no_photo_twice() -> None:
    keys = Counter(Photo.objects.values_list("listing_id", "original_name", "sha256_bytes"))
    assert [key for key, n in keys.items() if n > 1] == []


def _fail_on_call(number: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for real that raises KeyboardInterrupt (as Ctrl-C does) on its `number`-th call."""
    calls = Counter[str]()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == number:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.django_db
def test_a_nested_tree_larger_than_one_upload_imports_every_file_in_several_jobs(
    tmp_path: Path, settings: Any
) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = _tree(tmp_path / "agency")
    report = tmp_path / "report.csv"
    out = _import(root, "--report", str(report))
    assert Photo.objects.count() == len(TREE)
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == len(TREE)
    counts = dict(Listing.objects.annotate(n=Count("photos")).values_list("external_id", "n"))
    assert counts == {"agency/flat-a": 5, "agency/flat-b": 5, "agency/flat-c": 2}
    assert _ingest_jobs() == [2, 2, 2, 3, 3]  # 5 -> 3 + 2, 5 -> 3 + 2, 2
    assert {name: row["outcome"] for name, row in _csv_rows(report).items()} == dict.fromkeys(
        TREE, "accepted"
    )
    assert f"{len(TREE)} accepted, 0 duplicate, 0 rejected, 0 skipped" in out


def test_the_walk_yields_the_first_file_before_listing_the_rest_of_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "agency")
    scanned: list[Path] = []
    real = os.scandir

    def counting(path: Any) -> Any:
        scanned.append(Path(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)  # the walk calls os.scandir once per folder
    assert inspect.isgenerator(walk_files(root))
    stream = plan_stream(root)
    first = next(stream)
    assert isinstance(first, PlannedFile) and first.path == root / "flat-a" / "a0.jpg"
    assert set(scanned) <= {root, root / "flat-a"}  # flat-a/rooms, flat-b, flat-c not listed yet
    assert len(list(stream)) == len(TREE) - 1


def test_import_chunks_take_a_stream_lazily_and_split_by_listing_size_and_repeated_name() -> None:
    a, b = PlannedListing("a", "a"), PlannedListing("b", "b")
    pulled: list[str] = []

    def files() -> Iterator[PlannedFile]:
        for listing, name in [(a, "1.jpg"), (a, "2.jpg"), (a, "3.jpg"), (a, "x/1.jpg"), (b, "1.jpg")]:
            pulled.append(name)
            yield PlannedFile(Path(name), listing)

    chunks = imports.import_chunks(files(), 5)
    first = next(chunks)
    assert [p.name for p in first.paths] == ["1.jpg", "2.jpg", "3.jpg"]  # a second 1.jpg starts a new one
    assert len(pulled) == 4  # nothing beyond what the first chunk needed (and one to see it end)
    rest = [(c.listing.external_id, [str(p) for p in c.paths]) for c in chunks]
    assert rest == [("a", ["x/1.jpg"]), ("b", ["1.jpg"])]


def _rerun_tree(root: Path) -> Path:
    _tree(root)
    _write(root / "flat-a" / "broken.jpg", images.jpeg(40)[:1500])  # stored, then rejected on decoding
    _write(root / "flat-b" / "rooms.zip", _zip({"bath.jpg": images.jpeg(41), "hall.png": images.png(42)}))
    _write(root / "flat-b" / "notes.txt", b"viewing on Tuesday")
    return root


@pytest.mark.django_db
def test_re_running_the_same_import_stores_nothing_twice_and_reports_each_file_as_already_imported(
    tmp_path: Path, settings: Any
) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = _rerun_tree(tmp_path / "agency")
    _import(root, "--report", str(tmp_path / "first.csv"))
    assert _csv_rows(tmp_path / "first.csv")["flat-a/broken.jpg"]["outcome"] == "rejected"
    photos, ingest_jobs = Photo.objects.count(), Job.objects.filter(kind=Job.Kind.INGEST).count()
    last_job = Job.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert photos == len(TREE) + 3
    report = tmp_path / "again.csv"
    out = _import(root, "--report", str(report))
    assert Photo.objects.count() == photos
    assert Job.objects.filter(kind=Job.Kind.INGEST).count() == ingest_jobs
    # The only new job is this run's inline extraction (it finds nothing new to extract).
    assert list(Job.objects.filter(pk__gt=last_job).values_list("kind", flat=True)) == [Job.Kind.EXTRACT]
    rows = _csv_rows(report)
    assert rows.pop("flat-b/notes.txt")["outcome"] == "skipped"
    expected = {*TREE, "flat-a/broken.jpg", "flat-b/rooms.zip/bath.jpg", "flat-b/rooms.zip/hall.png"}
    assert set(rows) == expected
    assert {(r["outcome"], r["detail"].startswith("already imported")) for r in rows.values()} == {
        ("skipped", True)
    }
    assert f"0 accepted, 0 duplicate, 0 rejected, {len(expected) + 1} skipped" in out
    _assert_no_photo_twice()


@pytest.mark.django_db
def test_an_interrupted_import_writes_its_report_and_a_re_run_completes_it(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = _tree(tmp_path / "agency")
    _write(root / "notes.txt", b"skip me")
    monkeypatch.setattr(ingest, "photo_ingest", _fail_on_call(2, ingest.photo_ingest))
    report = tmp_path / "report.json"
    with pytest.raises(CommandError, match=r"interrupted.*Run the same command again"):
        _import(root, "--report", str(report))
    body = json.loads(report.read_text())
    assert body["interrupted"] is True
    done = {row["file"]: row["outcome"] for row in body["files"]}
    # root's own files come first, then flat-a/ and flat-a/rooms/: the first chunk of three
    first_chunk = ["flat-a/a0.jpg", "flat-a/rooms/a1.jpg", "flat-a/rooms/a2.jpg"]
    assert done == {"notes.txt": "skipped", **dict.fromkeys(first_chunk, "accepted")}
    assert Photo.objects.count() == 3
    monkeypatch.undo()
    _import(root, "--report", str(tmp_path / "again.csv"))
    assert Photo.objects.count() == len(TREE)
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == len(TREE)
    _assert_no_photo_twice()


@pytest.mark.django_db
def test_a_job_interrupted_while_processing_is_finished_by_the_re_run(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = _tree(tmp_path / "agency")
    monkeypatch.setattr(ingest, "photo_process", _fail_on_call(4, ingest.photo_process))  # 2nd chunk
    with pytest.raises(CommandError, match="Run the same command again"):
        _import(root, "--report", str(tmp_path / "report.csv"))
    assert Photo.objects.filter(status=Photo.Status.RECEIVED).count() == 2  # the rest of chunk 2
    monkeypatch.undo()
    _import(root, "--report", str(tmp_path / "again.csv"))
    assert Photo.objects.count() == len(TREE)
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == len(TREE)
    assert set(Job.objects.filter(kind=Job.Kind.INGEST).values_list("status", flat=True)) == {
        Job.Status.SUCCEEDED
    }
    _assert_no_photo_twice()


def _report_tree(root: Path) -> Path:
    _write(root / "flat-a" / "a.jpg", images.jpeg(1, size=(96, 72)))
    _write(root / "flat-a" / "sub" / "b.jpg", images.jpeg(2, size=(96, 72)))
    _write(root / "flat-a" / "notes.txt", b"viewing on Tuesday")
    _write(root / "flat-b" / ".hidden.jpg", images.jpeg(3, size=(96, 72)))
    _write(root / ".git" / "config", b"[core]")
    return root


SKIPPED = {
    "flat-a/notes.txt": "not a photo or zip (.txt)",
    "flat-b/.hidden.jpg": "hidden file",
    ".git/config": "hidden file",
}


@pytest.mark.django_db
def test_the_report_has_one_row_per_file_with_reasons_and_a_summary_as_json_or_csv(tmp_path: Path) -> None:
    root = _report_tree(tmp_path / "agency")
    out = _import(root, "--report", str(tmp_path / "report.json"))  # JSON by its suffix
    body = json.loads((tmp_path / "report.json").read_text())
    rows = {row["file"]: row for row in body["files"]}
    assert len(rows) == len(body["files"]) == 5
    assert {f: rows[f]["detail"] for f in SKIPPED} == SKIPPED
    assert {f: rows[f]["outcome"] for f in SKIPPED} == dict.fromkeys(SKIPPED, "skipped")
    assert rows["flat-a/sub/b.jpg"]["outcome"] == "accepted" and rows["flat-a/sub/b.jpg"]["photo_id"]
    assert body["summary"] == {"accepted": 2, "duplicate": 0, "rejected": 0, "skipped": 3}
    assert "2 accepted, 0 duplicate, 0 rejected, 3 skipped" in out
    assert "flat-b/.hidden.jpg: skipped: hidden file" in out

    _import(root, "--report", str(tmp_path / "again.data"), "--report-format", "json")
    again = json.loads((tmp_path / "again.data").read_text())
    assert again["summary"] == {"accepted": 0, "duplicate": 0, "rejected": 0, "skipped": 5}

    _import(root, "--report", str(tmp_path / "forced.json"), "--report-format", "csv")  # the flag wins
    csv_rows = _csv_rows(tmp_path / "forced.json")
    assert {f: csv_rows[f]["detail"] for f in SKIPPED} == SKIPPED
    assert set(csv_rows) == set(rows)


@pytest.mark.django_db
def test_a_zip_inside_the_tree_imports_as_a_chunk_of_its_own(tmp_path: Path, settings: Any) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = tmp_path / "agency"
    for seed in range(4):
        _write(root / "flat-a" / "rooms" / f"p{seed}.jpg", images.jpeg(seed, size=(96, 72)))
    _write(
        root / "flat-a" / "rooms" / "more.zip", _zip({"bath.jpg": images.jpeg(9), "hall.png": images.png(8)})
    )
    report = tmp_path / "report.csv"
    _import(root, "--report", str(report))
    assert _ingest_jobs() == [1, 2, 3]  # 4 photos -> 3 + 1, and the zip's two entries
    rows = _csv_rows(report)
    assert rows["flat-a/rooms/more.zip/bath.jpg"]["outcome"] == "accepted"
    assert rows["flat-a/rooms/more.zip/hall.png"]["listing"] == "agency/flat-a"
    assert Photo.objects.filter(listing__external_id="agency/flat-a").count() == 6


def test_skipped_items_of_a_stream_name_each_file_not_imported(tmp_path: Path) -> None:
    root = _report_tree(tmp_path / "agency")
    skipped = {str(i.path.relative_to(root)): i.reason for i in plan_stream(root) if isinstance(i, Skipped)}
    assert skipped == SKIPPED


@pytest.mark.django_db
def test_a_folder_that_becomes_unreadable_mid_walk_stops_with_a_message_and_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "agency")
    real_scandir, listed = os.scandir, Counter[str]()

    def scandir_losing_flat_c(path: Any = ".") -> Any:
        listed[str(path)] += 1
        if (
            isinstance(path, str | os.PathLike) and Path(path).name == "flat-c" and listed[str(path)] > 1
        ):  # counted once, then the disk goes away
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_losing_flat_c)
    report = tmp_path / "report.json"
    with pytest.raises(
        CommandError, match=r"cannot read .*flat-c: Permission denied.*Run the same command again"
    ):
        _import(root, "--report", str(report))
    body = json.loads(report.read_text())
    assert body["stopped"].startswith("stopped: cannot read")
    # flat-a's job finished before the walk failed; flat-b's files were still being gathered: not stored
    assert {row["file"]: row["outcome"] for row in body["files"]} == {
        name: "accepted" for name in TREE if name.startswith("flat-a/")
    }
    assert Photo.objects.count() == 5
    monkeypatch.undo()
    _import(root, "--report", str(tmp_path / "again.csv"))
    assert Photo.objects.count() == len(TREE)
    _assert_no_photo_twice()
