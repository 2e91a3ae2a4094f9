"""Similarity search: exact copies, edited copies, same room, similar look — grouped by listing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from PIL import Image, ImageOps

from search import storage
from search.ml.features import load_encoder
from search.ml.hashing import hamming
from search.ml.localmatch import LocalFeatures, extract_local, verify
from search.ml.matching import Candidate, Level, LevelThresholds, Match, classify, rank_matches
from search.ml.normalise import ImageLimits, normalise
from search.models import Feature, Photo
from search.services.index import index_for_search

LEVEL_ORDER = [Level.EXACT, Level.EDITED, Level.SAME_ROOM, Level.SIMILAR]
LEVEL_LABELS = {
    Level.EXACT: "Exact copy",
    Level.EDITED: "Edited copy",
    Level.SAME_ROOM: "Same room, other angle",
    Level.SIMILAR: "Similar look",
}


@dataclass
class QueryImage:
    """A normalised query picture and its hashes."""

    image: Image.Image
    sha256_pixels: str
    phash: int
    name: str
    exclude_ids: set[int] = field(default_factory=set)


@dataclass
class MatchRow:
    """One matching photo with its level, score and evidence."""

    photo: Photo
    level: str
    score: float
    evidence: dict[str, Any]


@dataclass
class SearchResult:
    """Matches grouped by level and by listing, with timings."""

    query: str
    matches: list[MatchRow]
    took_ms: float
    timings: dict[str, float] = field(default_factory=dict)

    def by_level(self) -> list[tuple[str, str, list[MatchRow]]]:
        """(level, label, rows) in level order, empty levels omitted."""
        groups = [(lv.value, LEVEL_LABELS[lv], [m for m in self.matches if m.level == lv.value]) for lv in LEVEL_ORDER]
        return [g for g in groups if g[2]]

    def by_listing(self) -> list[dict[str, Any]]:
        """Listings with matched photos, strongest evidence first."""
        listings: dict[int, dict[str, Any]] = {}
        for row in self.matches:
            entry = listings.setdefault(
                row.photo.listing_id, {"listing": row.photo.listing, "rows": [], "best": row.level}
            )
            entry["rows"].append(row)
        rank = {lv.value: i for i, lv in enumerate(LEVEL_ORDER)}
        return sorted(listings.values(), key=lambda e: (rank[e["best"]], -len(e["rows"])))


def thresholds() -> LevelThresholds:
    """Calibrated level thresholds, overridable in settings (FLATSITE_MATCH_THRESHOLDS)."""
    overrides = getattr(settings, "FLATSITE_MATCH_THRESHOLDS", {}) or {}
    return LevelThresholds(**overrides)


def query_from_file(path: Path, name: str) -> QueryImage:
    """Normalise an uploaded query exactly as stored photos were (raises ImageRejected)."""
    result = normalise(path, name, ImageLimits(max_pixels=settings.FLATSITE_MAX_PIXELS))
    return QueryImage(result.image, result.sha256_pixels, result.phash, name)


def query_from_photo(photo: Photo) -> QueryImage:
    """Use a stored photo as the query (it and its copies are left out of the results)."""
    stored = photo.stored
    with Image.open(storage.media_path(stored.image_path)) as img:
        image = img.convert("RGB")
    exclude = {stored.pk, photo.pk, *Photo.objects.filter(duplicate_of=stored).values_list("pk", flat=True)}
    return QueryImage(image, stored.sha256_pixels, int(stored.phash or "0", 16), photo.original_name, exclude)


def _shortlist(query: QueryImage, size: int) -> dict[int, tuple[float, bool]]:
    encoder = settings.FLATSITE_SEARCH_ENCODER
    index = index_for_search(encoder)
    if index is None or len(index) == 0:
        return {}
    vectors = load_encoder(encoder).embed_images([query.image, ImageOps.mirror(query.image)])  # (2, D)
    scores, ids = index.search(vectors, min(size, len(index)))  # (2, k)
    best: dict[int, tuple[float, bool]] = {}
    for row, mirrored in ((0, False), (1, True)):
        for score, pid in zip(scores[row], ids[row], strict=True):
            if pid < 0 or int(pid) in query.exclude_ids:
                continue
            if float(score) > best.get(int(pid), (-2.0, False))[0]:
                best[int(pid)] = (float(score), mirrored)
    return best


def _verifications(query: QueryImage, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    mine = extract_local(query.image)
    rows = Feature.objects.filter(encoder="sift", photo_id__in=ids).values_list("photo_id", "data")
    return {pid: verify(mine, LocalFeatures.from_bytes(bytes(data))) for pid, data in rows}


def _candidates(query: QueryImage, shortlist: dict[int, tuple[float, bool]], verify_top: int) -> list[Candidate]:
    exact_ids = set(
        Photo.objects.filter(sha256_pixels=query.sha256_pixels, duplicate_of__isnull=True)
        .exclude(pk__in=query.exclude_ids)
        .values_list("pk", flat=True)
    )
    ranked = sorted(shortlist, key=lambda pid: -shortlist[pid][0])
    checks = _verifications(query, ranked[:verify_top])
    hashes = dict(Photo.objects.filter(pk__in=[*ranked, *exact_ids]).values_list("pk", "phash"))
    out = []
    for pid in dict.fromkeys([*exact_ids, *ranked]):
        stored_hash = hashes.get(pid) or ""
        out.append(
            Candidate(
                id=pid,
                global_score=shortlist.get(pid, (1.0, False))[0],
                pixel_equal=pid in exact_ids,
                phash_distance=hamming(query.phash, int(stored_hash, 16)) if stored_hash else None,
                verification=checks.get(pid),
            )
        )
    return out


def _rows(matches: list[Match], exclude: set[int]) -> list[MatchRow]:
    ids = [m.id for m in matches]
    photos = {p.pk: p for p in Photo.objects.select_related("listing").filter(pk__in=ids)}
    copies = Photo.objects.select_related("listing").filter(duplicate_of_id__in=ids).exclude(pk__in=exclude)
    by_original: dict[int, list[Photo]] = {}
    for copy in copies:
        by_original.setdefault(copy.duplicate_of_id or 0, []).append(copy)
    rows: list[MatchRow] = []
    for match in matches:
        rows.append(MatchRow(photos[match.id], match.level.value, match.score, dict(match.evidence)))
        for copy in by_original.get(match.id, []):
            rows.append(MatchRow(copy, match.level.value, match.score, {**match.evidence, "copy_of": match.id}))
    return rows


def image_search(query: QueryImage, *, k: int = 10, shortlist: int = 50, verify_top: int = 30) -> SearchResult:
    """Find matches of a query photo at every level; similar-look results are capped at k."""
    started = time.perf_counter()
    short = _shortlist(query, shortlist)
    t_global = time.perf_counter()
    candidates = _candidates(query, short, verify_top)
    t_local = time.perf_counter()
    limits = thresholds()
    matches = rank_matches([m for c in candidates if (m := classify(c, limits)) is not None])
    similar = [m for m in matches if m.level == Level.SIMILAR][:k]
    kept = [m for m in matches if m.level != Level.SIMILAR] + similar
    rows = _rows(kept, query.exclude_ids)
    done = time.perf_counter()
    timings = {"global_ms": 1000 * (t_global - started), "verify_ms": 1000 * (t_local - t_global)}
    return SearchResult(query.name, rows, 1000 * (done - started), timings)
