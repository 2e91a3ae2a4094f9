"""Read-only queries of the operations page: the side-by-side encoder comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from search.models import IndexVersion


@dataclass(frozen=True)
class EncoderColumn:
    """One encoder's latest evaluated index version, flattened for the comparison table."""

    encoder: str
    version: int
    live: bool
    searching: bool  # the encoder FLATSITE_SEARCH_ENCODER points at
    recall_at_1: float | None
    worst_edit: str
    worst_recall: float | None
    room_purity: float | None
    room_ari: float | None
    room_skipped: str
    sample_size: int
    evaluated_at: Any  # datetime, or None when the stored value is unreadable


def _column(row: IndexVersion) -> EncoderColumn:
    ev: dict[str, Any] = row.evaluation
    near: dict[str, Any] = ev.get("near_duplicate") or {}
    room: dict[str, Any] = ev.get("room") or {}
    return EncoderColumn(
        encoder=row.encoder,
        version=row.version,
        live=row.status == IndexVersion.Status.LIVE,
        searching=row.encoder == settings.FLATSITE_SEARCH_ENCODER,
        recall_at_1=near.get("recall_at_1"),
        worst_edit=str(near.get("worst_edit", "")),
        worst_recall=near.get("worst_recall"),
        room_purity=room.get("knn_purity"),
        room_ari=room.get("ari"),
        room_skipped=str(room.get("skipped", "")),
        sample_size=int(ev.get("sample_size", 0)),
        evaluated_at=parse_datetime(str(ev.get("evaluated_at", ""))),
    )


def encoder_comparison() -> list[EncoderColumn]:
    """Per encoder, its highest evaluated index version (one query), the search encoder first."""
    rows = (
        IndexVersion.objects.filter(evaluation__has_key="near_duplicate")
        .exclude(status=IndexVersion.Status.FAILED)
        .order_by("encoder", "-version")
    )
    latest: dict[str, IndexVersion] = {}
    for row in rows:
        latest.setdefault(row.encoder, row)
    columns = [_column(row) for row in latest.values()]
    return sorted(columns, key=lambda c: (not c.searching, c.encoder))
