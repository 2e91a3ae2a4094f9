"""Plan a bulk import as a stream: which file goes to which listing, or why it is skipped (no Django here).

The folder is walked lazily (os.scandir, one directory at a time), so a million photos are never held as a
list: memory grows with the depth of the tree, not its size. The Houses layout (a few thousand files by
design) and a listings CSV's set of named files are the only things held whole.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.ml.images.normalise import ALLOWED_EXTENSIONS

# A zip in the folder is imported as the web upload would: its image entries become photos of the listing.
ZIP_EXTENSIONS = (".zip",)
IMPORTABLE_EXTENSIONS = (*ALLOWED_EXTENSIONS, *ZIP_EXTENSIONS)

HOUSES_FILE = re.compile(r"^(?P<house>\d+)_(?P<room>[A-Za-z]+)\.[A-Za-z]+$")
HOUSES_INFO_GLOB = "HousesInfo*.txt"
CSV_COLUMNS = (
    "file",
    "listing",
    "title",
    "address",
    "zipcode",
    "bedrooms",
    "bathrooms",
    "area",
    "price",
    "room",
)


class ImportPlanError(ValueError):
    """The folder or listings file cannot be imported; the message says why."""


@dataclass
class PlannedListing:
    """One listing of an import and its files (path, ground-truth room tag)."""

    external_id: str
    title: str
    fields: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedFile:
    """One file to import into a listing (the listing's `files` stay empty in a stream)."""

    path: Path
    listing: PlannedListing
    tag: str = ""


@dataclass(frozen=True)
class Skipped:
    """A file of the folder that is not imported, and why."""

    path: Path
    reason: str


PlanItem = PlannedFile | Skipped


def _is_importable(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMPORTABLE_EXTENSIONS


def _not_importable_reason(name: str, hidden: bool) -> str:
    if hidden or name.startswith("."):
        return "hidden file"
    return f"not a photo or zip ({Path(name).suffix.lower() or 'no extension'})"


def walk_files(folder: Path) -> Iterator[tuple[Path, bool]]:
    """Every file under folder, lazily, as (path, inside a hidden folder); subfolders in name order.

    A folder's files come in the order the file system lists them: sorting them would hold all the names
    of a flat folder of a million photos. Only the subfolder names of the folders on the current path are
    kept, and one directory is open at a time.
    """
    yield from _walk(folder, hidden=False)


def _walk(folder: Path, hidden: bool) -> Iterator[tuple[Path, bool]]:
    subfolders: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.name)
            elif entry.is_file():
                yield Path(entry.path), hidden
    for name in sorted(subfolders):
        yield from _walk(folder / name, hidden or name.startswith("."))


def plan_stream(root: Path, listings_csv: Path | None = None) -> Iterator[PlanItem]:
    """The import's files in order, grouped by listing, each planned or skipped; layout chosen as before.

    Errors come here, before anything is stored: a listings CSV and the Houses layout are checked whole,
    a folder is checked to hold at least one photo (the walk stops at the first).
    """
    if not root.is_dir():
        raise ImportPlanError(f"{root} is not a folder")
    if listings_csv is not None:
        return _csv_stream(root, listings_csv, plan_from_csv(root, listings_csv))
    if any(root.glob(HOUSES_INFO_GLOB)):
        return _houses_stream(root, plan_houses(root))
    if not any(not hidden and _is_importable(path.name) for path, hidden in walk_files(root)):
        looked = ", ".join(IMPORTABLE_EXTENSIONS)
        raise ImportPlanError(f"no photos found in {root} (looked for {looked})")
    return _folders_stream(root)


def count_files(root: Path) -> int:
    """How many files the folder holds (for the progress bar): one cheap pass, nothing kept."""
    return sum(1 for _ in walk_files(root))


def _folders_stream(root: Path) -> Iterator[PlanItem]:
    """Each subfolder is a listing; files directly in root form a listing named after root."""
    top = PlannedListing(root.name, root.name)
    current: PlannedListing | None = None  # one at a time: the walk finishes a subfolder before the next
    for path, hidden in walk_files(root):
        relative = path.relative_to(root).parts
        if hidden or not _is_importable(path.name):
            yield Skipped(path, _not_importable_reason(path.name, hidden))
        elif len(relative) == 1:
            yield PlannedFile(path, top)
        else:
            if current is None or current.title != relative[0]:
                current = PlannedListing(f"{root.name}/{relative[0]}", relative[0])
            yield PlannedFile(path, current)


def _houses_info(root: Path) -> dict[int, dict[str, Any]]:
    info: dict[int, dict[str, Any]] = {}
    for info_file in root.glob(HOUSES_INFO_GLOB):
        for number, line in enumerate(info_file.read_text().splitlines(), start=1):
            parts = line.split()
            if len(parts) != 5:
                continue
            beds, baths, area, zipcode, price = parts
            info[number] = {
                "bedrooms": int(float(beds)),
                "bathrooms": float(baths),
                "area": int(float(area)),
                "zipcode": zipcode,
                "price": int(float(price)),
            }
    return info


def plan_houses(root: Path) -> list[PlannedListing]:
    """Houses dataset: `<house>_<room>.jpg`, one listing per house, metadata from HousesInfo."""
    info = _houses_info(root)
    by_house: dict[int, PlannedListing] = {}
    for entry in sorted(p for p in root.iterdir() if p.is_file() and _is_importable(p.name)):
        match = HOUSES_FILE.match(entry.name)
        if match is None:
            raise ImportPlanError(f"{entry.name} does not follow the <house>_<room> naming of this folder")
        house = int(match["house"])
        plan = by_house.setdefault(
            house, PlannedListing(f"house-{house}", f"House {house}", fields=dict(info.get(house, {})))
        )
        plan.files.append((entry, match["room"].lower()))
    return [by_house[h] for h in sorted(by_house)]


def _houses_stream(root: Path, plans: list[PlannedListing]) -> Iterator[PlanItem]:
    for plan in plans:
        files, plan.files = plan.files, []
        for path, tag in files:
            yield PlannedFile(path, plan, tag)
    metadata = {p.resolve() for p in root.glob(HOUSES_INFO_GLOB)}
    for path, hidden in walk_files(root):
        if path.resolve() in metadata:
            yield Skipped(path, "listing metadata, not a photo")
        elif hidden or not _is_importable(path.name):
            yield Skipped(path, _not_importable_reason(path.name, hidden))
        elif path.parent != root:
            yield Skipped(path, "not part of this folder's layout")


def plan_from_csv(root: Path, listings_csv: Path) -> list[PlannedListing]:
    """CSV with columns file, listing, title, address, zipcode, bedrooms, bathrooms, area, price, room."""
    plans: dict[str, PlannedListing] = {}
    try:
        with open(listings_csv, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"file", "listing"} - set(reader.fieldnames or [])
            if missing:
                raise ImportPlanError(f"{listings_csv} lacks columns: {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                path, listing, tag = _csv_row(root, row, line, plans)
                plans[listing].files.append((path, tag))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ImportPlanError(f"cannot read {listings_csv}: {exc}") from exc
    return list(plans.values())


def _csv_stream(root: Path, listings_csv: Path, plans: list[PlannedListing]) -> Iterator[PlanItem]:
    # The CSV is read whole (its files grouped by listing, so a listing's rows need not be adjacent
    # to make upload-sized jobs); the rest of the folder is walked lazily for the files it does not name.
    named = {str(path) for plan in plans for path, _ in plan.files}
    for plan in plans:
        files, plan.files = plan.files, []
        for path, tag in files:
            yield PlannedFile(path, plan, tag)
    metadata = str(listings_csv.resolve())
    for path, hidden in walk_files(root):
        resolved = str(path.resolve())
        if resolved == metadata:
            yield Skipped(path, "listing metadata, not a photo")
        elif resolved in named:
            continue
        elif hidden or not _is_importable(path.name):
            yield Skipped(path, _not_importable_reason(path.name, hidden))
        else:
            yield Skipped(path, "not named in the listings CSV")


def _csv_row(
    root: Path, row: dict[str, str], line: int, plans: dict[str, PlannedListing]
) -> tuple[Path, str, str]:
    """The row's (resolved file, listing id, room tag); the listing's fields are updated in plans."""
    path = (root / row["file"]).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise ImportPlanError(f"line {line}: file {row['file']!r} is not a file inside {root}")
    listing = row["listing"].strip()
    if not listing:
        raise ImportPlanError(f"line {line}: empty listing id")
    plan = plans.setdefault(listing, PlannedListing(listing, (row.get("title") or listing).strip()))
    for key in ("address", "zipcode"):
        if row.get(key):
            plan.fields[key] = row[key].strip()
    try:
        for key, cast in (("bedrooms", int), ("bathrooms", float), ("area", int), ("price", int)):
            if row.get(key):
                plan.fields[key] = cast(float(row[key]))
    except ValueError as exc:
        raise ImportPlanError(f"line {line}: {exc}") from exc
    return path, listing, (row.get("room") or "").strip().lower()


def plan_import(root: Path, listings_csv: Path | None = None) -> list[PlannedListing]:
    """The whole plan as listings with their files (small folders and tests; the command streams)."""
    plans: dict[int, PlannedListing] = {}
    for item in plan_stream(root, listings_csv):
        if isinstance(item, PlannedFile):
            plan = plans.setdefault(id(item.listing), item.listing)
            plan.files.append((item.path, item.tag))
    return list(plans.values())


def skipped_files(root: Path, listings_csv: Path | None = None) -> list[Skipped]:
    """Every file under root that the plan does not import, with the reason (so no file goes unmentioned)."""
    items = plan_stream(root, listings_csv)
    return sorted((i for i in items if isinstance(i, Skipped)), key=lambda s: s.path)
