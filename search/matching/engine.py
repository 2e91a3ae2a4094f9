"""Similarity search: exact copies, edited copies, same room, similar look — grouped by listing."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from flatsite.core import storage
from search.clusters.selectors import photo_room_tags
from search.listings.decoding import image_normalise
from search.matching.evidence import evidence_words
from search.matching.live_index import index_for_search
from search.matching.rerank import RerankIndexes, rerank_encoder, rerank_indexes, similar_rerank
from search.ml.encoders.registry import load_encoder
from search.ml.images.normalise import ImageLimits, check_extension
from search.ml.index import SearchableIndex
from search.ml.match.levels import (
    Level,
    LevelThresholds,
    Match,
    QueryEvidence,
    StoredEvidence,
    match_shortlist,
    merge_hits,
)
from search.ml.match.local import LocalConfig, LocalFeatures, extract_query_local
from search.models import LOCAL_ENCODER, Feature, Photo
from search.ops.selectors import search_encoder

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
    # Photos never listed: a stored photo used as the query is not its own match (its copies are).
    exclude_ids: set[int] = field(default_factory=set)
    # Descriptors already stored for a photo used as the query, so they are not computed again.
    vector: np.ndarray | None = None  # (D,) search-encoder embedding
    local: LocalFeatures | None = None
    vector2: np.ndarray | None = None  # (D2,) re-rank-encoder embedding
    listing_id: int | None = None  # a stored query's own listing: not listed as a match "by listing"


@dataclass
class MatchRow:
    """One matching photo with its level, score and evidence."""

    photo: Photo
    level: str
    score: float
    evidence: dict[str, Any]

    @property
    def words(self) -> str:
        """The match in plain words (search/matching/evidence.py)."""
        return evidence_words(self.level, self.evidence)


@dataclass
class SearchResult:
    """Matches grouped by level and by listing, with timings."""

    query: str
    matches: list[MatchRow]
    took_ms: float
    timings: dict[str, float] = field(default_factory=dict)
    query_listing_id: int | None = None

    def as_json(self, query: str) -> dict[str, Any]:
        """The JSON shape shared by the API and find_similar --json."""
        return {
            "query": query,
            "took_ms": round(self.took_ms, 1),
            "timings": {stage: round(ms, 1) for stage, ms in self.timings.items()},
            "matches": [
                {
                    "photo_id": row.photo.pk,
                    "listing_id": row.photo.listing_id,
                    "original_name": row.photo.original_name,
                    "level": row.level,
                    "score": round(float(row.score), 4),
                    "evidence": row.evidence,
                }
                for row in self.matches
            ],
        }

    def by_level(self) -> list[tuple[str, str, list[MatchRow]]]:
        """(level, label, rows) in level order, empty levels omitted."""
        groups = [
            (lv.value, LEVEL_LABELS[lv], [m for m in self.matches if m.level == lv.value])
            for lv in LEVEL_ORDER
        ]
        return [g for g in groups if g[2]]

    @property
    def has_similar(self) -> bool:
        """Whether any similar look cleared the floor."""
        return any(row.level == Level.SIMILAR.value for row in self.matches)

    def by_listing(self) -> list[dict[str, Any]]:
        """Other listings with matched photos, strongest evidence first.

        "matched" counts copies and same-room photos only; "similar" counts the similar looks beside them.
        """
        listings: dict[int, dict[str, Any]] = {}
        for row in self.matches:
            if row.photo.listing_id == self.query_listing_id:
                continue  # the query's own listing is where the photo comes from, not a match
            entry = listings.setdefault(row.photo.listing_id, {"listing": row.photo.listing, "rows": []})
            entry["rows"].append(row)
        rank = {lv.value: i for i, lv in enumerate(LEVEL_ORDER)}
        for entry in listings.values():
            entry["best"] = min((r.level for r in entry["rows"]), key=rank.__getitem__)
            entry["similar"] = sum(r.level == Level.SIMILAR.value for r in entry["rows"])
            entry["matched"] = len(entry["rows"]) - entry["similar"]
            # A copy or the same room in another listing means that listing probably shows this flat.
            entry["probable_duplicate"] = entry["matched"] > 0
        return sorted(listings.values(), key=lambda e: (rank[e["best"]], -e["matched"], -e["similar"]))

    def only(self, levels: set[str], agent: str = "") -> SearchResult:
        """The same result keeping the given levels (all when empty) and one agent's photos (all when "")."""
        rows = [
            row
            for row in self.matches
            if (not levels or row.level in levels)
            and (not agent or row.photo.listing.owner.get_username() == agent)
        ]
        return replace(self, matches=rows)


def thresholds() -> LevelThresholds:
    """Calibrated level thresholds, overridable in settings (FLATSITE_MATCH_THRESHOLDS)."""
    return LevelThresholds.from_dict(settings.FLATSITE_MATCH_THRESHOLDS)


def query_from_file(path: Path, name: str) -> QueryImage:
    """Normalise an uploaded query exactly as stored photos were (raises ImageRejected)."""
    # The same child-process decoder as ingestion: a hostile query can only fail itself.
    limits = ImageLimits(max_pixels=settings.FLATSITE_MAX_PIXELS)
    result = image_normalise(path, name, limits, derivatives=False)  # a query is never stored
    return QueryImage(result.image, result.sha256_pixels, result.phash, name)


def query_from_upload(upload: Any) -> QueryImage:
    """Normalise an uploaded query file (Django UploadedFile); raises ImageRejected."""
    name = upload.name or "query"
    check_extension(name)
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return query_from_file(Path(tmp.name), name)


def query_from_photo(photo: Photo) -> QueryImage:
    """Use a stored photo as the query: it is left out, its exact copies (in any listing) are listed."""
    stored = photo.stored
    with Image.open(storage.media_path(stored.image_path)) as img:
        image = img.convert("RGB")
    exclude = {photo.pk}
    search = search_encoder()
    extra = rerank_encoder(search)
    encoders = [search, LOCAL_ENCODER, extra]
    features = dict(Feature.objects.filter(photo=stored, encoder__in=encoders).values_list("encoder", "data"))
    vector = features.get(search)
    local = features.get(LOCAL_ENCODER)
    vector2 = features.get(extra)
    return QueryImage(
        image,
        stored.sha256_pixels,
        int(stored.phash or "0", 16),
        photo.original_name,
        exclude,
        vector=np.frombuffer(bytes(vector), dtype=np.float32) if vector is not None else None,
        local=LocalFeatures.from_bytes(bytes(local)) if local is not None else None,
        vector2=np.frombuffer(bytes(vector2), dtype=np.float32) if vector2 is not None else None,
        listing_id=photo.listing_id,
    )


# The query's SIFT and Lite2 embedding run beside its Lite0 embedding, and candidates are verified side by
# side: OpenCV, torch and numpy's matrix products release the GIL.
_query_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="query")


def _query_local(query: QueryImage) -> Future[LocalFeatures]:
    if query.local is not None:
        done: Future[LocalFeatures] = Future()
        done.set_result(query.local)
        return done
    cfg = LocalConfig(query_max_side=settings.FLATSITE_SEARCH_QUERY_SIFT_SIDE)
    return _query_pool.submit(extract_query_local, query.image, cfg)


def _query_vector2(query: QueryImage, encoder: str) -> Future[np.ndarray]:
    """The query's (D2,) re-rank-encoder embedding, stored or computed beside the other descriptors."""
    if query.vector2 is not None:
        done: Future[np.ndarray] = Future()
        done.set_result(query.vector2)
        return done
    model = load_encoder(encoder)
    return _query_pool.submit(lambda: model.embed_images([query.image])[0])


ROOM_WIDEN_MAX = 4096  # most neighbours one room-filtered search looks at


@dataclass
class _Shortlist:
    """Global neighbours {id: cosine}, the query's (D,) embedding, and whether the cosines are centred."""

    scores: dict[int, float]
    vector: np.ndarray | None = None
    centred: bool = False


def _hits(index: SearchableIndex, vectors: np.ndarray, size: int, exclude: set[int]) -> dict[int, float]:
    scores, ids = index.search(vectors, min(size, len(index)))  # (1 or 2, k)
    merged = merge_hits((scores, ids))  # each id's best score over the query and its mirror
    return {pid: score for pid, score in merged.items() if pid not in exclude}


def _room_hits(
    index: SearchableIndex, vectors: np.ndarray, want: int, room_tag: str, exclude: set[int]
) -> dict[int, float]:
    """The `want` nearest photos carrying room_tag: the search widens until it has them or hits a bound.

    The bound (ROOM_WIDEN_MAX neighbours) keeps a rare tag in a million photos from turning one search
    into a scan of the collection; past it, the room filter shows what the nearest neighbours hold.
    """
    size = want
    while True:
        hits = _hits(index, vectors, size, exclude)
        tags = photo_room_tags(list(hits))
        tagged = {pid: score for pid, score in hits.items() if tags.get(pid) == room_tag}
        if len(tagged) >= want or size >= min(len(index), ROOM_WIDEN_MAX):
            return dict(sorted(tagged.items(), key=lambda item: -item[1])[:want])
        size = min(size * 4, ROOM_WIDEN_MAX)


def _shortlist(
    query: QueryImage, size: int, index: SearchableIndex | None, encoder: str, room: tuple[str, int] = ("", 0)
) -> _Shortlist:
    """The nearest `size` photos and, with room = (tag, n), the nearest n photos carrying that room tag."""
    if index is None or len(index) == 0:
        return _Shortlist({})
    model = load_encoder(encoder)
    own = query.vector if query.vector is not None and query.vector.shape[0] == model.info.dim else None
    images = [] if own is not None else [query.image]
    if settings.FLATSITE_SEARCH_MIRROR_QUERY:  # the mirror searched too, so mirrored copies rank high
        images.append(ImageOps.mirror(query.image))
    rows = [own[None, :]] if own is not None else []
    if images:
        rows.append(model.embed_images(images))
    vectors = np.vstack(rows)  # (1 or 2, D): the query first, then its mirror
    kept = _hits(index, vectors, size, query.exclude_ids)
    if room[0]:  # the nearest photos of that room too, however far down they rank; copies stay in the rest
        kept.update(_room_hits(index, vectors, room[1], room[0], query.exclude_ids))
    return _Shortlist(kept, vectors[0], index.config.centre is not None)


def _stored_lookup(ids: list[int], verify_ids: list[int]) -> dict[int, StoredEvidence]:
    rows = Photo.objects.filter(pk__in=ids).values_list("pk", "sha256_pixels", "phash")
    local = dict(
        Feature.objects.filter(encoder=LOCAL_ENCODER, photo_id__in=verify_ids).values_list("photo_id", "data")
    )
    return {
        pk: StoredEvidence(
            sha256=sha,
            phash=int(ph, 16) if ph else None,
            features=LocalFeatures.from_bytes(bytes(local[pk])) if pk in local else None,
        )
        for pk, sha, ph in rows
    }


def _match(
    query: QueryImage, local: Future[LocalFeatures], shortlist: dict[int, float], limits: LevelThresholds
) -> list[Match]:
    same_pixels = Photo.objects.filter(sha256_pixels=query.sha256_pixels, duplicate_of__isnull=True)
    same_ids = list(same_pixels.values_list("pk", flat=True))
    exact_ids = [pid for pid in same_ids if pid not in query.exclude_ids]
    ordered = sorted(shortlist, key=lambda pid: -shortlist[pid])
    verify_ids = [*exact_ids, *ordered[: limits.verify_top_k]]
    stored = _stored_lookup([*exact_ids, *ordered], verify_ids)
    evidence = QueryEvidence(query.sha256_pixels, query.phash, local.result() if ordered else None)
    found = match_shortlist(
        evidence, shortlist, stored.get, limits, exact_ids=exact_ids, mapper=_query_pool.map
    )
    # A stored query photo is an exact copy of itself without verifying it: it is not listed (see _rows),
    # but it stands in for its byte copies, which the index does not hold, so they are listed as exact.
    own = [pid for pid in same_ids if pid in query.exclude_ids]
    return [*(Match(pid, Level.EXACT, 1.0, {"phash_distance": 0}) for pid in own), *found]


def _rows(matches: list[Match], exclude: set[int]) -> list[MatchRow]:
    ids = [m.id for m in matches]
    photos = {p.pk: p for p in Photo.objects.select_related("listing__owner").filter(pk__in=ids)}
    copies = (
        Photo.objects.select_related("listing__owner").filter(duplicate_of_id__in=ids).exclude(pk__in=exclude)
    )
    by_original: dict[int, list[Photo]] = {}
    for copy in copies:
        by_original.setdefault(copy.duplicate_of_id or 0, []).append(copy)
    rows: list[MatchRow] = []
    for match in matches:
        if match.id not in exclude:  # the query photo itself is no match, but its copies are
            rows.append(MatchRow(photos[match.id], match.level.value, match.score, dict(match.evidence)))
        for copy in by_original.get(match.id, []):
            rows.append(
                MatchRow(copy, match.level.value, match.score, {**match.evidence, "copy_of": match.id})
            )
    return rows


def _levels_limits(short: _Shortlist, t: LevelThresholds) -> LevelThresholds:
    # The similar floor is calibrated separately for raw and centred cosines.
    return replace(t, similar_min_score=t.similar_min_centred) if short.centred else t


def _reranked(
    matches: list[Match],
    short: _Shortlist,
    vector2: Future[np.ndarray] | None,
    reranking: RerankIndexes | None,
    t: LevelThresholds,
) -> list[Match]:
    if vector2 is None or reranking is None or short.vector is None:
        return matches
    top = sorted(short.scores, key=lambda pid: -short.scores[pid])[: t.verify_top_k]
    return similar_rerank(matches, top, (short.vector, vector2.result()), reranking, t)


def _in_room(matches: list[Match], room_tag: str) -> list[Match]:
    """Copies (exact, edited) whatever their room type; other levels only with room_tag (none: all)."""
    if not room_tag:
        return matches
    tags = photo_room_tags([m.id for m in matches if m.level not in (Level.EXACT, Level.EDITED)])
    return [m for m in matches if m.level in (Level.EXACT, Level.EDITED) or tags.get(m.id) == room_tag]


def _similar_shown(matches: list[Match], k: int, floor: float) -> list[Match]:
    """The first k similar looks in ranked order whose cosine clears the calibrated floor (never padded)."""
    # The re-ranking re-scores (cosine minus hubness, mostly negative) but must never admit a photo below
    # the floor the level was calibrated on, which is the cosine kept in the evidence.
    similar = [
        m
        for m in matches
        if m.level == Level.SIMILAR and float(m.evidence.get("global_score", m.score)) >= floor
    ]
    return similar[:k]


def image_search(query: QueryImage, *, k: int = 10, shortlist: int = 50, room_tag: str = "") -> SearchResult:
    """Find matches of a query photo at every level; similar-look results are capped at k.

    With room_tag, same-room and similar-look results are the nearest photos of that moderator-given room
    type (the search widens until it has them); exact and edited copies are listed whatever their room.
    """
    started = time.perf_counter()
    local = _query_local(query)
    t = thresholds()
    encoder = search_encoder()
    index = index_for_search(encoder)
    # Re-ranking only orders the similar level: a k=0 search (matches at ingest) skips it.
    reranking = rerank_indexes(index, encoder) if k > 0 else None
    short = _shortlist(query, shortlist, index, encoder, (room_tag, max(shortlist, k)))
    # Started after the shortlist: the query's SIFT (the longest stage before verification) gets a core
    # to itself meanwhile, and this embedding is needed only after verification.
    vector2 = _query_vector2(query, reranking.extra_encoder) if reranking is not None else None
    t_global = time.perf_counter()
    limits = _levels_limits(short, t)
    matches = _match(query, local, short.scores, limits)
    t_local = time.perf_counter()
    matches = _in_room(_reranked(matches, short, vector2, reranking, t), room_tag)
    t_rerank = time.perf_counter()
    similar = _similar_shown(matches, k, limits.similar_min_score)
    kept = [m for m in matches if m.level != Level.SIMILAR] + similar
    rows = _rows(kept, query.exclude_ids)
    done = time.perf_counter()
    timings = {
        "global_ms": 1000 * (t_global - started),
        "verify_ms": 1000 * (t_local - t_global),
        "rerank_ms": 1000 * (t_rerank - t_local),
    }
    return SearchResult(query.name, rows, 1000 * (done - started), timings, query.listing_id)
