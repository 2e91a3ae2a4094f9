"""Reads for a bulk import's report: every file's final outcome, after the workers processed its photos."""

from __future__ import annotations

from dataclasses import dataclass

from search.models import Photo


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
        final.append(row)
    return final
