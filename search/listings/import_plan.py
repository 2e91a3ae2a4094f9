"""Plan a bulk import: which files go to which listing, with what metadata (no Django here)."""

from __future__ import annotations

import csv
import re
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


def _importable(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMPORTABLE_EXTENSIONS


def _skip_reason(path: Path, root: Path, metadata: set[Path], by_csv: bool) -> str:
    if path in metadata:
        return "listing metadata, not a photo"
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        return "hidden file"
    if path.suffix.lower() not in IMPORTABLE_EXTENSIONS:
        return f"not a photo or zip ({path.suffix.lower() or 'no extension'})"
    if by_csv:
        return "not named in the listings CSV"
    return "not part of this folder's layout"


def skipped_files(root: Path, plans: list[PlannedListing], listings_csv: Path | None = None) -> list[Skipped]:
    """Every file under root that the plan does not import, with the reason (so no file goes unmentioned)."""
    planned = {path.resolve() for plan in plans for path, _ in plan.files}
    metadata = {p.resolve() for p in root.glob(HOUSES_INFO_GLOB)}
    by_csv = listings_csv is not None
    if listings_csv is not None:
        metadata.add(listings_csv.resolve())
    skipped = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        resolved = path.resolve()
        if resolved not in planned:
            skipped.append(Skipped(path, _skip_reason(resolved, root.resolve(), metadata, by_csv)))
    return skipped


@dataclass(frozen=True)
class Skipped:
    """A file of the folder that is not imported, and why."""

    path: Path
    reason: str


def plan_import(root: Path, listings_csv: Path | None = None) -> list[PlannedListing]:
    """Choose the layout: a listings CSV, the Houses dataset layout, or one listing per folder."""
    if not root.is_dir():
        raise ImportPlanError(f"{root} is not a folder")
    if listings_csv is not None:
        return plan_from_csv(root, listings_csv)
    if any(root.glob(HOUSES_INFO_GLOB)):
        return plan_houses(root)
    return plan_folders(root)


def plan_folders(root: Path) -> list[PlannedListing]:
    """Each subfolder is a listing; files directly in root form a listing named after root."""
    plans: list[PlannedListing] = []
    top = sorted(p for p in root.iterdir() if _importable(p))
    if top:
        plans.append(PlannedListing(root.name, root.name, files=[(p, "") for p in top]))
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if _importable(p))
        if files:
            plans.append(PlannedListing(f"{root.name}/{sub.name}", sub.name, files=[(p, "") for p in files]))
    if not plans:
        looked = ", ".join(IMPORTABLE_EXTENSIONS)
        raise ImportPlanError(f"no photos found in {root} (looked for {looked})")
    return plans


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
    for path in sorted(p for p in root.iterdir() if _importable(p)):
        match = HOUSES_FILE.match(path.name)
        if match is None:
            raise ImportPlanError(f"{path.name} does not follow the <house>_<room> naming of this folder")
        house = int(match["house"])
        plan = by_house.setdefault(
            house, PlannedListing(f"house-{house}", f"House {house}", fields=dict(info.get(house, {})))
        )
        plan.files.append((path, match["room"].lower()))
    return [by_house[h] for h in sorted(by_house)]


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
                _csv_row(root, row, line, plans)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ImportPlanError(f"cannot read {listings_csv}: {exc}") from exc
    return list(plans.values())


def _csv_row(root: Path, row: dict[str, str], line: int, plans: dict[str, PlannedListing]) -> None:
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
    plan.files.append((path, (row.get("room") or "").strip().lower()))
