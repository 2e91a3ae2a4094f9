"""Read-only queries of the operations page: index versions, their coverage, the search encoder, and the
side-by-side encoder comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from search.ml.encoders.registry import encoder_status, list_encoders
from search.ml.index.store import IndexStore
from search.models import Feature, IndexVersion, Job, Photo, SearchEncoderChoice

#: hooks name -> registered? for encoders other apps know how to build (a training run's GAN encoder);
#: filled at start-up (training.apps), so a web process or worker that never trained can still use them.
ENCODER_RESOLVERS: list[Callable[[str], bool]] = []
# The photos an index should hold: stored originals that finished processing (copies point at them).
_STORED = Q(duplicate_of__isnull=True, status__in=[Photo.Status.PROCESSED, Photo.Status.INDEXED])


def encoder_ensure(name: str) -> tuple[bool, str]:
    """Register the encoder in this process if some app knows it; (available?, reason)."""
    if name not in list_encoders():
        for resolve in ENCODER_RESOLVERS:
            if resolve(name):
                break
    return encoder_status(name)


def search_encoder() -> str:
    """The encoder whose live index search uses: the admin's latest choice, else FLATSITE_SEARCH_ENCODER."""
    chosen = SearchEncoderChoice.objects.order_by("-id").values_list("encoder", flat=True).first()
    if not chosen:
        return str(settings.FLATSITE_SEARCH_ENCODER)
    encoder_ensure(chosen)  # a chosen GAN encoder must be buildable in this process too (web or worker)
    return chosen


@dataclass(frozen=True)
class Coverage:
    """How many of the stored photos an index version holds."""

    indexed: int
    stored: int

    @property
    def full(self) -> bool:
        """Whether every stored photo is in the version."""
        return self.indexed >= self.stored

    @property
    def missing(self) -> int:
        """Stored photos a search with this version cannot find."""
        return max(0, self.stored - self.indexed)

    @property
    def percent(self) -> int:
        """Whole percent, rounded down so that a partial version never reads 100 %."""
        return 100 if self.stored == 0 else min(100, 100 * self.indexed // self.stored)

    def __str__(self) -> str:
        return f"{self.indexed} of {self.stored} stored photos indexed ({self.percent} %)"


def stored_photo_count() -> int:
    """Stored photos (originals, processed or indexed): what a complete index holds."""
    return Photo.objects.filter(_STORED).count()


def versions_on_disk(encoder: str) -> set[int]:
    """Versions whose manifest and index file of the recorded size are present (cheap: no checksum)."""
    root = Path(settings.INDEX_ROOT) / encoder
    if not root.is_dir():  # IndexStore would create it
        return set()
    return {info.version for info in IndexStore(root).versions()}


@dataclass(frozen=True)
class VersionRow:
    """One index version as the operations page shows it."""

    row: IndexVersion
    on_disk: bool
    coverage: Coverage

    @property
    def can_go_live(self) -> bool:
        """Whether "Make live" is offered: its files are present and it is neither live nor failed."""
        return self.on_disk and self.row.status not in (IndexVersion.Status.LIVE, IndexVersion.Status.FAILED)


@dataclass(frozen=True)
class EncoderIndexes:
    """One encoder's index versions whose files are present (and the live one), newest first."""

    encoder: str
    searching: bool  # the encoder search uses
    live: VersionRow | None
    versions: list[VersionRow]
    gone: int  # versions not listed: their files were pruned or are damaged, so they cannot go live

    @property
    def can_search(self) -> bool:
        """Whether "Use for search" is offered: another encoder is in use and this one's live index loads."""
        return not self.searching and self.live is not None and self.live.on_disk


def _encoder_indexes(encoder: str, rows: list[IndexVersion], stored: int, search: str) -> EncoderIndexes:
    disk = versions_on_disk(encoder)
    shown = [
        VersionRow(row, row.version in disk, Coverage(row.count, stored))
        for row in rows
        if row.version in disk or row.status == IndexVersion.Status.LIVE
    ]
    live = next((v for v in shown if v.row.status == IndexVersion.Status.LIVE), None)
    return EncoderIndexes(encoder, encoder == search, live, shown, len(rows) - len(shown))


def index_overview() -> list[EncoderIndexes]:
    """Per encoder, its index versions with coverage and whether each can go live; search encoder first."""
    groups: dict[str, list[IndexVersion]] = {}
    for row in IndexVersion.objects.select_related("job").order_by("encoder", "-version"):
        groups.setdefault(row.encoder, []).append(row)
    stored, search = stored_photo_count(), search_encoder()
    overview = [_encoder_indexes(encoder, rows, stored, search) for encoder, rows in groups.items()]
    return sorted(overview, key=lambda e: (not e.searching, e.encoder))


def live_candidate(encoder: str, version: int) -> VersionRow:
    """The version if it can be made live now, else ValueError saying why (nothing is changed)."""
    row = IndexVersion.objects.filter(encoder=encoder, version=version).first()
    if row is None:
        raise ValueError(f"there is no {encoder or 'encoder'} index version {version}")
    if row.status == IndexVersion.Status.FAILED:
        raise ValueError(f"{row} failed to build and cannot go live")
    if row.status == IndexVersion.Status.LIVE:
        raise ValueError(f"{encoder} index v{version} is already live")
    if version not in versions_on_disk(encoder):
        raise ValueError(f"{encoder} index v{version} cannot go live: its files were pruned or are damaged")
    return VersionRow(row, True, Coverage(row.count, stored_photo_count()))


def search_candidate(encoder: str) -> VersionRow:
    """The encoder's live version if search can switch to it now, else ValueError saying why."""
    if encoder == search_encoder():
        raise ValueError(f"search already uses {encoder or 'that encoder'}")
    ok, reason = encoder_ensure(encoder)
    if not ok:
        raise ValueError(f"encoder {encoder or '(none)'} is not available: {reason}")
    row = IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).first()
    if row is None:
        raise ValueError(f"{encoder} has no live index: rebuild its index first")
    if row.version not in versions_on_disk(encoder):
        raise ValueError(f"{encoder}'s live index v{row.version} has no files on disk: rebuild it first")
    return VersionRow(row, True, Coverage(row.count, stored_photo_count()))


@dataclass(frozen=True)
class OperationPlan:
    """What a re-extract or rebuild of one encoder would do, for its confirmation page."""

    kind: str
    encoder: str
    stored: int  # stored photos: a re-extract embeds all of them
    features: int  # the encoder's features of stored photos: what a rebuild indexes
    live: IndexVersion | None
    search_encoder: str

    @property
    def rebuild_coverage(self) -> Coverage:
        """Coverage of the version a rebuild writes from today's features."""
        return Coverage(self.features, self.stored)


def operation_plan(kind: str, encoder: str) -> OperationPlan:
    """The plan of a re-extract (EXTRACT) or rebuild (REINDEX); ValueError for an unknown kind or encoder."""
    if kind not in (Job.Kind.EXTRACT, Job.Kind.REINDEX):
        raise ValueError(f"unknown operation {kind!r}")
    ok, reason = encoder_ensure(encoder)
    if not ok:
        raise ValueError(f"encoder {encoder or '(none)'} is not available: {reason}")
    features = (
        Feature.objects.filter(encoder=encoder, photo__duplicate_of__isnull=True)
        .exclude(photo__status=Photo.Status.REJECTED)  # the rows index_rebuild reads (feature_reads)
        .count()
    )
    if kind == Job.Kind.REINDEX and features == 0:
        raise ValueError(f"no {encoder} features to index: run Re-extract all first")
    return OperationPlan(
        kind=kind,
        encoder=encoder,
        stored=stored_photo_count(),
        features=features,
        live=IndexVersion.objects.filter(encoder=encoder, status=IndexVersion.Status.LIVE).first(),
        search_encoder=search_encoder(),
    )


@dataclass(frozen=True)
class EncoderColumn:
    """One encoder's latest evaluated index version, flattened for the comparison table."""

    encoder: str
    version: int
    live: bool
    searching: bool  # the encoder search uses (search_encoder())
    can_go_live: bool  # its files are present and it is not live
    recall_at_1: float | None
    worst_edit: str
    worst_recall: float | None
    room_purity: float | None
    room_ari: float | None
    room_skipped: str
    sample_size: int
    evaluated_at: Any  # datetime, or None when the stored value is unreadable


def _column(row: IndexVersion, search: str) -> EncoderColumn:
    ev: dict[str, Any] = row.evaluation
    near: dict[str, Any] = ev.get("near_duplicate") or {}
    room: dict[str, Any] = ev.get("room") or {}
    return EncoderColumn(
        encoder=row.encoder,
        version=row.version,
        live=row.status == IndexVersion.Status.LIVE,
        searching=row.encoder == search,
        can_go_live=row.status != IndexVersion.Status.LIVE and row.version in versions_on_disk(row.encoder),
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
    search = search_encoder()
    columns = [_column(row, search) for row in latest.values()]
    return sorted(columns, key=lambda c: (not c.searching, c.encoder))
