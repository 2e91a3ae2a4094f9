"""A bulk import's report: every file's outcome, spooled to disk as the import goes, written as CSV or JSON.

Rows go to a spool file chunk by chunk (nothing held per file in memory); at the end the spool is read back
in batches, each accepted photo's processing result looked up (rejected or duplicate after decoding), and
the report written with a summary of the counts.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from search.models import Photo

OUTCOMES = ("accepted", "duplicate", "rejected", "skipped")
REPORT_COLUMNS = ("file", "listing", "outcome", "detail", "photo_id")
FORMATS = ("csv", "json")
BATCH = 1000


@dataclass(frozen=True)
class ReportRow:
    """One file of an import and what became of it."""

    file: str
    listing: str
    outcome: str  # accepted | duplicate | rejected | skipped
    detail: str = ""
    photo_id: int | None = None

    def line(self) -> str:
        """The row as one line for people: `<file>: <outcome>[: detail]`."""
        return f"{self.file}: {self.outcome}" + (f": {self.detail}" if self.detail else "")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON report."""
        return dict(
            zip(
                REPORT_COLUMNS,
                (self.file, self.listing, self.outcome, self.detail, self.photo_id),
                strict=True,
            )
        )


def rows_finalise(rows: list[ReportRow]) -> list[ReportRow]:
    """Rows with each accepted photo's processing result: rejected or duplicate after decoding, if so."""
    ids = [r.photo_id for r in rows if r.outcome == "accepted" and r.photo_id is not None]
    photos = {
        p["pk"]: p
        for p in Photo.objects.filter(pk__in=ids).values("pk", "status", "reject_reason", "duplicate_of")
    }
    final = []
    for row in rows:
        photo = photos.get(row.photo_id) if row.outcome == "accepted" and row.photo_id else None
        if photo is not None and photo["status"] == Photo.Status.REJECTED:
            row = ReportRow(row.file, row.listing, "rejected", photo["reject_reason"], row.photo_id)
        elif photo is not None and photo["status"] == Photo.Status.DUPLICATE:
            detail = f"duplicate of #{photo['duplicate_of']}" if photo["duplicate_of"] else "duplicate"
            row = ReportRow(row.file, row.listing, "duplicate", detail, row.photo_id)
        elif photo is not None and photo["status"] != Photo.Status.RECEIVED:
            row = ReportRow(row.file, row.listing, "accepted", photo["status"], row.photo_id)
        final.append(row)
    return final


class ReportSpool:
    """Rows of an import in progress, on disk: append chunk by chunk, read back in batches."""

    def __init__(self, folder: Path | None = None) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", newline="", dir=folder)  # noqa: SIM115  # closed by close()
        self._writer = csv.writer(self._file)
        self.count = 0

    def add(self, rows: Iterable[ReportRow]) -> None:
        """Append rows."""
        for r in rows:
            self._writer.writerow((r.file, r.listing, r.outcome, r.detail, r.photo_id or ""))
            self.count += 1

    def batches(self, size: int = BATCH) -> Iterator[list[ReportRow]]:
        """The rows so far, in order, size at a time."""
        self._file.flush()
        self._file.seek(0)
        batch: list[ReportRow] = []
        for file, listing, outcome, detail, photo_id in csv.reader(self._file):
            batch.append(ReportRow(file, listing, outcome, detail, int(photo_id) if photo_id else None))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
        self._file.seek(0, 2)  # appends continue at the end

    def close(self) -> None:
        """Drop the spool file."""
        self._file.close()


def report_format(path: Path, requested: str | None) -> str:
    """csv or json: the flag if given, else .json paths are JSON and everything else CSV."""
    if requested:
        return requested
    return "json" if path.suffix.lower() == ".json" else "csv"


def report_write(
    spool: ReportSpool,
    path: Path,
    fmt: str,
    on_row: Callable[[ReportRow], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Counter[str]:
    """Finalise the spooled rows into the report at path (written whole, then renamed); the counts."""
    counts: Counter[str] = Counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as fh:
        writer = _JsonWriter(fh) if fmt == "json" else _CsvWriter(fh)
        for batch in spool.batches():
            for row in rows_finalise(batch):
                counts[row.outcome] += 1
                writer.row(row)
                if on_row is not None:
                    on_row(row)
        writer.close({"summary": {k: counts[k] for k in OUTCOMES}, **(extra or {})})
    partial.replace(path)  # a reader never sees half a report
    return counts


class _CsvWriter:
    def __init__(self, fh: IO[str]) -> None:
        self._writer = csv.writer(fh)
        self._writer.writerow(REPORT_COLUMNS)

    def row(self, r: ReportRow) -> None:
        self._writer.writerow((r.file, r.listing, r.outcome, r.detail, r.photo_id or ""))

    def close(self, summary: dict[str, Any]) -> None:
        pass  # the CSV holds rows only; the summary is printed


class _JsonWriter:
    """`{"files": [...], "summary": {...}}` written row by row."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh
        self._first = True
        fh.write('{"files": [')

    def row(self, r: ReportRow) -> None:
        self._fh.write(("\n" if self._first else ",\n") + json.dumps(r.as_dict()))
        self._first = False

    def close(self, summary: dict[str, Any]) -> None:
        tail = json.dumps(summary)[1:-1]
        self._fh.write("\n], " + tail + "}\n")
