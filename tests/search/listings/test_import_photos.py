"""import_photos: folder layouts, the Houses layout with metadata, CSV listings, clear errors."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from search.listings import imports
from search.listings.import_plan import (
    ImportPlanError,
    PlannedFile,
    PlannedListing,
    plan_houses,
    plan_import,
    skipped_files,
)
from search.models import Job, Listing, Photo
from tests import images
from tests.shared_data import require_shared_data


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_each_subfolder_is_a_listing_and_top_files_form_one_named_after_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "agency"
    _write(root / "top.jpg", images.jpeg(1))
    _write(root / "flat-a" / "k.jpg", images.jpeg(2))
    _write(root / "flat-b" / "x" / "b.png", images.png(3))
    _write(root / "flat-b" / "notes.txt", b"skip me")
    plans = plan_import(root)
    assert [(p.title, [f.name for f, _ in p.files]) for p in plans] == [
        ("agency", ["top.jpg"]),
        ("flat-a", ["k.jpg"]),
        ("flat-b", ["b.png"]),
    ]


def test_houses_layout_gives_one_listing_per_house_with_metadata_and_room_tags(tmp_path: Path) -> None:
    root = tmp_path / "houses"
    for house in (1, 2):
        for room in ("kitchen", "frontal"):
            _write(root / f"{house}_{room}.jpg", images.jpeg(house * 10 + len(room)))
    (root / "HousesInfo-1-200.txt").write_text("4 4 4053 85255 869500\n3 2.5 1200 90210 500000\n")
    plans = plan_houses(root)
    assert [p.external_id for p in plans] == ["house-1", "house-2"]
    assert plans[1].fields == {
        "bedrooms": 3,
        "bathrooms": 2.5,
        "area": 1200,
        "zipcode": "90210",
        "price": 500000,
    }
    assert sorted(tag for _, tag in plans[0].files) == ["frontal", "kitchen"]


def test_bad_import_folder_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImportPlanError, match="is not a folder"):
        plan_import(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportPlanError, match="no photos found"):
        plan_import(tmp_path / "empty")


def test_csv_listings_must_name_files_inside_the_folder(tmp_path: Path) -> None:
    _write(tmp_path / "a.jpg", images.jpeg(4))
    csv_path = tmp_path / "l.csv"
    csv_path.write_text("file,listing,title\n../etc/passwd,L1,Evil\n")
    with pytest.raises(ImportPlanError, match="line 2"):
        plan_import(tmp_path, csv_path)


@pytest.mark.django_db(transaction=True)
def test_import_photos_inline_imports_processes_and_is_idempotent(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "houses"
    for house in (1, 2):
        for room in ("kitchen", "bathroom"):
            _write(root / f"{house}_{room}.jpg", images.jpeg(house * 7 + len(room)))
    shutil.copy(root / "1_kitchen.jpg", root / "2_kitchen.jpg")  # a photo shared by two listings
    (root / "HousesInfo-1-200.txt").write_text("4 4 4053 85255 869500\n3 2 1200 90210 500000\n")
    call_command("import_photos", str(root), "--inline")
    assert Listing.objects.count() == 2
    assert Listing.objects.get(external_id="house-1").price == 869500
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == 3  # processed, extracted, indexed
    copy = Photo.objects.get(status=Photo.Status.DUPLICATE)
    assert copy.duplicate_of is not None
    assert copy.room_tag == "kitchen" and copy.duplicate_of.listing.external_id == "house-1"
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    assert "files/s" in capsys.readouterr().out
    call_command("import_photos", str(root), "--inline")
    assert Photo.objects.count() == 4


@pytest.mark.django_db
def test_import_photos_reports_a_missing_folder_as_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("import_photos", str(tmp_path / "nope"), "--inline")


@pytest.mark.shared_data
def test_shared_houses_folder_plans_200_listings_of_four_photos() -> None:
    houses = require_shared_data() / "houses"
    plans = plan_houses(houses)
    assert len(plans) == 200
    assert all(len(p.files) == 4 for p in plans)
    assert {tag for p in plans for _, tag in p.files} == {"bathroom", "bedroom", "kitchen", "frontal"}
    assert plans[0].fields["zipcode"] == "85255"


def _report(path: Path) -> dict[str, tuple[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)), "a file has more than one row"
    return {r["file"]: (r["outcome"], r["detail"]) for r in rows}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.django_db
def test_every_file_of_the_folder_gets_exactly_one_outcome(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "flat"
    _write(root / "a-kitchen.jpg", images.jpeg(1))
    _write(root / "b-kitchen-again.jpg", images.jpeg(1))  # the same pixels: a duplicate
    _write(root / "broken.jpg", images.jpeg(2)[:1500])  # a readable header, then cut off
    _write(root / "plan.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    _write(root / "notes.txt", b"viewing on Tuesday")
    _write(root / ".DS_Store", b"\0")
    _write(root / "more.zip", _zip({"bath.jpg": images.jpeg(3), "hall.png": images.png(4)}))
    report = tmp_path / "report.csv"
    call_command("import_photos", str(root), "--inline", "--report", str(report))
    rows = _report(report)
    assert set(rows) == {
        "a-kitchen.jpg",
        "b-kitchen-again.jpg",
        "broken.jpg",
        "plan.svg",
        "notes.txt",
        ".DS_Store",
        "more.zip/bath.jpg",
        "more.zip/hall.png",
    }
    assert (
        rows["a-kitchen.jpg"][0] == rows["more.zip/bath.jpg"][0] == rows["more.zip/hall.png"][0] == "accepted"
    )
    assert rows["b-kitchen-again.jpg"][0] == "duplicate"
    assert rows["broken.jpg"][0] == "rejected" and rows["broken.jpg"][1]
    assert rows["plan.svg"] == ("skipped", "not a photo or zip (.svg)")
    assert rows["notes.txt"] == ("skipped", "not a photo or zip (.txt)")
    assert rows[".DS_Store"] == ("skipped", "hidden file")
    out = capsys.readouterr().out
    assert f"broken.jpg: rejected: {rows['broken.jpg'][1]}" in out
    assert "plan.svg: skipped: not a photo or zip (.svg)" in out
    assert "3 accepted, 1 duplicate, 1 rejected, 3 skipped" in out
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == 3


@pytest.mark.django_db
def test_an_invalid_zip_is_rejected_alone_and_the_rest_imports(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _write(root / "kitchen.jpg", images.jpeg(1))
    _write(root / "broken.zip", b"PK\x03\x04 not really a zip")
    report = tmp_path / "report.csv"
    call_command("import_photos", str(root), "--inline", "--report", str(report))
    rows = _report(report)
    assert rows["kitchen.jpg"][0] == "accepted"
    assert rows["broken.zip"][0] == "rejected" and "zip" in rows["broken.zip"][1]


@pytest.mark.django_db
def test_a_folder_larger_than_one_upload_is_split_into_several_jobs(tmp_path: Path, settings: Any) -> None:
    settings.FLATSITE_MAX_FILES_PER_UPLOAD = 3
    root = tmp_path / "big"
    for seed in range(7):
        _write(root / f"photo-{seed}.jpg", images.jpeg(100 + seed))
    report = tmp_path / "report.csv"
    call_command("import_photos", str(root), "--inline", "--report", str(report))
    assert [o for o, _ in _report(report).values()] == ["accepted"] * 7
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == 7
    assert sorted(Job.objects.filter(kind=Job.Kind.INGEST).values_list("total", flat=True)) == [1, 3, 3]


def test_import_chunks_keep_each_zip_alone_and_cap_the_rest() -> None:
    listing = PlannedListing("flat", "flat")
    names = ["0.jpg", "1.jpg", "a.zip", "2.jpg", "3.jpg", "4.jpg", "b.ZIP"]
    files = (PlannedFile(Path(name), listing) for name in names)
    chunks = [[p.name for p in chunk.paths] for chunk in imports.import_chunks(files, 2)]
    assert sorted(chunks) == [["0.jpg", "1.jpg"], ["2.jpg", "3.jpg"], ["4.jpg"], ["a.zip"], ["b.ZIP"]]


def test_files_a_listings_csv_does_not_name_are_skipped_with_that_reason(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    named = _write(root / "a.jpg", images.jpeg(1))
    _write(root / "b.jpg", images.jpeg(2))
    listings_csv = _write(root / "listings.csv", b"file,listing\na.jpg,flat-1\n")
    plans = plan_import(root, listings_csv)
    assert [path for plan in plans for path, _ in plan.files] == [named.resolve()]
    assert [(s.path.name, s.reason) for s in skipped_files(root, listings_csv)] == [
        ("b.jpg", "not named in the listings CSV"),
        ("listings.csv", "listing metadata, not a photo"),
    ]
