"""Match levels (exact, edited copy, same room, similar look) from global, hash and geometric evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from search.ml.config import config_from_dict, config_to_dict
from search.ml.images.hashing import hamming
from search.ml.match.local import LocalConfig, LocalFeatures, Verification, verify

__all__ = [
    "Candidate",
    "Level",
    "LevelThresholds",
    "Match",
    "QueryEvidence",
    "StoredEvidence",
    "classify",
    "edited_evidence",
    "fits_needed",
    "match_shortlist",
    "merge_hits",
    "rank_matches",
    "same_room_evidence",
]


class Level(StrEnum):
    """How a stored photo relates to the query, strongest first."""

    EXACT = "exact"
    EDITED = "edited"
    SAME_ROOM = "same_room"
    SIMILAR = "similar"


LEVEL_ORDER: dict[Level, int] = {Level.EXACT: 0, Level.EDITED: 1, Level.SAME_ROOM: 2, Level.SIMILAR: 3}


@dataclass(frozen=True)
class LevelThresholds:
    """Decision thresholds; defaults are the values calibrated by bench.edited_copies / bench.same_room."""

    # Edited copy: one affine map (crop, pad, resize, rotation; mirror via the flipped query) explains it.
    # Calibrated by bench.edited_copies.near_duplicates (best recall at pair precision >= 0.995 on the
    # calibration houses).
    edited_min_inliers: int = 15
    edited_min_inlier_ratio: float = 0.3
    edited_min_coverage: float = 0.3
    edited_max_residual: float = 1.0
    # A small pHash distance alone also means an edited copy (tiny or flat photos with few keypoints):
    # half the smallest distance seen between two different calibration photos.
    edited_max_phash: int = 7
    # Same room, other angle: many inliers to a fundamental matrix or homography, spread over the picture.
    # Calibrated above every unrelated-listing pair seen (x1.25) by bench.same_room.
    same_room_min_inliers: int = 42
    same_room_min_inlier_ratio: float = 0.2
    same_room_min_coverage: float = 0.05
    # Optional guard on the global cosine for the same-room level (-1 = off).
    same_room_min_global: float = -1.0
    # Similar look: global cosine floor (raw GeM effnet-lite0 cosine; bench.same_room calibrates it as the
    # lowest cosine above which most unrelated listing pairs show the same kind of room).
    similar_min_score: float = 0.547
    # The same floor for a centred index (cosine of embeddings minus the collection mean), calibrated the
    # same way on centred cosines; used when the live index is centred (search/matching/index.py).
    similar_min_centred: float = -0.055
    # How many global neighbours get local verification, and how many of those also try the mirrored query
    # (the global embedding is nearly mirror-invariant, so a mirrored copy's original ranks near the top).
    verify_top_k: int = 30
    verify_mirror_top_k: int = 10
    # Re-ranking of the similar level (search.ml.match.rerank): centred Lite0/Lite2 cosines averaged with this
    # Lite2 share, minus the candidate's hub score (mean similarity to its rerank_hub_k nearest stored
    # photos) x rerank_hub_weight. Fixed a priori (equal weights, standard CSLS k=10), not tuned.
    rerank_lite2_weight: float = 0.5
    rerank_hub_k: int = 10
    rerank_hub_weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for Django settings / JSON (search.ml.config convention)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LevelThresholds:
        """Build from a dict; missing keys keep defaults, unknown ones (a mistyped setting) are refused."""
        return config_from_dict(cls, data)


@dataclass
class Candidate:
    """Everything known about one stored photo for one query."""

    id: int
    global_score: float
    pixel_equal: bool
    phash_distance: int | None
    verification: Verification | None


@dataclass
class Match:
    """A classified candidate: its level, a score for ordering within the level, and the evidence shown."""

    id: int
    level: Level
    score: float
    evidence: dict[str, float | int | str | bool] = field(default_factory=dict)


def edited_evidence(v: Verification | None, t: LevelThresholds) -> bool:
    """True when one affine map explains most matches with a tiny residual over a large share of the query."""
    if v is None or v.affine_inliers < t.edited_min_inliers or v.matches == 0:
        return False
    return (
        v.affine_inliers / v.matches >= t.edited_min_inlier_ratio
        and v.affine_coverage >= t.edited_min_coverage
        and v.affine_residual <= t.edited_max_residual
    )


def same_room_evidence(v: Verification | None, t: LevelThresholds) -> bool:
    """True when an epipolar or planar model has enough well-spread inliers."""
    if v is None or v.inliers < t.same_room_min_inliers or v.matches == 0:
        return False
    return v.inlier_ratio >= t.same_room_min_inlier_ratio and v.coverage >= t.same_room_min_coverage


def _evidence(c: Candidate) -> dict[str, float | int | str | bool]:
    out: dict[str, float | int | str | bool] = {"global_score": round(c.global_score, 4)}
    if c.phash_distance is not None:
        out["phash_distance"] = c.phash_distance
    if c.verification is not None:
        out.update(c.verification.evidence())
    return out


def classify(c: Candidate, t: LevelThresholds) -> Match | None:
    """Map one candidate's evidence to a level; None when it is below the similar floor."""
    ev = _evidence(c)
    v = c.verification
    if c.pixel_equal:
        return Match(c.id, Level.EXACT, 1.0, ev)
    if edited_evidence(v, t) and v is not None:
        # Inlier share times coverage: the original beats a sibling shot that only shares part of the scene.
        return Match(c.id, Level.EDITED, round(v.affine_inliers / v.matches * v.affine_coverage, 4), ev)
    if c.phash_distance is not None and c.phash_distance <= t.edited_max_phash:
        return Match(c.id, Level.EDITED, round(1.0 - c.phash_distance / 64, 4), ev)
    if same_room_evidence(v, t) and c.global_score >= t.same_room_min_global and v is not None:
        return Match(c.id, Level.SAME_ROOM, round(v.inlier_ratio * v.coverage, 4), ev)
    if c.global_score >= t.similar_min_score:
        return Match(c.id, Level.SIMILAR, round(c.global_score, 4), ev)
    return None


def rank_matches(matches: Iterable[Match]) -> list[Match]:
    """Order by level (exact > edited > same_room > similar), then by score, highest first."""
    return sorted(matches, key=lambda m: (LEVEL_ORDER[m.level], -m.score, m.id))


def merge_hits(*hits: tuple[np.ndarray, np.ndarray]) -> dict[int, float]:
    """Merge (scores, ids) rows of several global searches (e.g. photo and mirror) keeping each id's best."""
    best: dict[int, float] = {}
    for scores, ids in hits:
        for score, ident in zip(np.ravel(scores).tolist(), np.ravel(ids).tolist(), strict=True):
            if ident >= 0 and score > best.get(ident, -np.inf):
                best[int(ident)] = float(score)
    return best


@dataclass
class QueryEvidence:
    """What is computed once per query photo."""

    sha256: str
    phash: int
    features: LocalFeatures | None


# A map-like callable (builtins.map, Executor.map) that keeps the order of its items.
Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


@dataclass
class StoredEvidence:
    """What is cached per stored photo."""

    sha256: str
    phash: int | None
    features: LocalFeatures | None


def _candidate(
    ident: int,
    score: float,
    q: QueryEvidence,
    s: StoredEvidence,
    cfg: LocalConfig | None,
    rank: int,
    t: LevelThresholds,
) -> Candidate:
    v = None
    if rank < t.verify_top_k and q.features is not None and s.features is not None:
        v = verify(q.features, s.features, cfg, mirror=None if rank < t.verify_mirror_top_k else False)
    dist = None if s.phash is None else hamming(q.phash, s.phash)
    return Candidate(ident, score, q.sha256 == s.sha256, dist, v)


def fits_needed(cfg: LocalConfig, t: LevelThresholds) -> LocalConfig:
    """cfg with RANSAC skipped where too few matches could ever reach a level's inlier threshold."""
    # Inliers never outnumber matches: below edited_min_inliers no fit can make an edited copy, below
    # same_room_min_inliers no homography/fundamental fit a same-room match. Most of the 30 verified
    # candidates are unrelated photos with a handful of chance matches (bench/README.md, "Load test").
    return dataclasses.replace(
        cfg,
        min_matches=max(cfg.min_matches, min(t.edited_min_inliers, t.same_room_min_inliers)),
        min_matches_epipolar=max(cfg.min_matches_epipolar, t.same_room_min_inliers),
    )


def match_shortlist(
    query: QueryEvidence,
    shortlist: Mapping[int, float],
    stored: Callable[[int], StoredEvidence | None],
    t: LevelThresholds,
    cfg: LocalConfig | None = None,
    exact_ids: Sequence[int] = (),
    mapper: Mapper | None = None,
) -> list[Match]:
    """Classify a global shortlist {id: cosine}; the best verify_top_k ids get local verification.

    mapper (e.g. a thread pool's map) runs the per-candidate work; the builtin map when None.
    """
    cfg = fits_needed(cfg or LocalConfig(), t)
    if query.features is not None:
        # Trimmed once here, so verify() gets this same object for every candidate and its cached RootSIFT
        # and mirror are computed once (a stored photo's query carries all its 1 000 features).
        query = dataclasses.replace(query, features=query.features.strongest(cfg.verify_features))
    order = sorted(shortlist, key=lambda i: -shortlist[i])
    ids = list(dict.fromkeys([*exact_ids, *order]))
    work = [(rank, ident, stored(ident)) for rank, ident in enumerate(ids)]

    def candidate(item: tuple[int, int, StoredEvidence | None]) -> Candidate | None:
        rank, ident, evidence = item
        if evidence is None:
            return None
        return _candidate(ident, shortlist.get(ident, 0.0), query, evidence, cfg, rank, t)

    # Verification's matching and RANSAC run in numpy/OpenCV without the GIL: threads shorten a search.
    candidates = (mapper or map)(candidate, work)
    found = (classify(c, t) for c in candidates if c is not None)
    return rank_matches(m for m in found if m is not None)
