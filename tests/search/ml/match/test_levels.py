"""Match levels: classification at the threshold edges, ordering, serialisation, shortlist pipeline."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from search.ml.images.hashing import phash, pixel_sha256
from search.ml.match.levels import (
    Candidate,
    Level,
    LevelThresholds,
    Match,
    QueryEvidence,
    StoredEvidence,
    classify,
    fits_needed,
    match_shortlist,
    merge_hits,
    rank_matches,
)
from search.ml.match.local import LocalConfig, Verification, extract_local, verify

T = LevelThresholds(
    edited_min_inliers=20,
    edited_min_inlier_ratio=0.5,
    edited_min_coverage=0.3,
    edited_max_residual=1.5,
    edited_max_phash=4,
    same_room_min_inliers=30,
    same_room_min_inlier_ratio=0.3,
    same_room_min_coverage=0.1,
    same_room_min_global=0.3,
    similar_min_score=0.6,
)


def _affine(
    inliers: int = 100, matches: int = 120, coverage: float = 0.8, residual: float = 0.5
) -> Verification:
    return Verification(
        inliers=inliers,
        matches=matches,
        inlier_ratio=inliers / matches,
        model="affine",
        mirrored=False,
        coverage=coverage,
        affine_inliers=inliers,
        affine_residual=residual,
        affine_coverage=coverage,
    )


def _epipolar(inliers: int = 60, matches: int = 100, coverage: float = 0.4) -> Verification:
    return Verification(
        inliers=inliers,
        matches=matches,
        inlier_ratio=inliers / matches,
        model="fundamental",
        mirrored=False,
        coverage=coverage,
        affine_inliers=8,
        affine_residual=1.0,
        affine_coverage=0.05,
        fundamental_inliers=inliers,
    )


def _cand(
    v: Verification | None = None, score: float = 0.7, equal: bool = False, ph: int | None = 30
) -> Candidate:
    return Candidate(id=1, global_score=score, pixel_equal=equal, phash_distance=ph, verification=v)


def _level(c: Candidate) -> Level | None:
    found = classify(c, T)
    return None if found is None else found.level


def test_equal_pixels_are_an_exact_copy_whatever_the_rest() -> None:
    match = classify(_cand(None, score=0.1, equal=True), T)
    assert match is not None
    assert match.level == Level.EXACT
    assert match.score == 1.0


def test_edited_copy_at_the_inlier_edge() -> None:
    assert _level(_cand(_affine(inliers=20, matches=40))) == Level.EDITED
    assert _level(_cand(_affine(inliers=19, matches=38))) == Level.SIMILAR


def test_edited_copy_needs_ratio_coverage_and_a_small_residual() -> None:
    assert _level(_cand(_affine(inliers=20, matches=41))) == Level.SIMILAR
    # 25 inliers: too few for the same-room level, so failing an edited test falls through to similar.
    assert _level(_cand(_affine(inliers=25, matches=30, coverage=0.3))) == Level.EDITED
    assert _level(_cand(_affine(inliers=25, matches=30, coverage=0.29))) == Level.SIMILAR
    assert _level(_cand(_affine(inliers=25, matches=30, residual=1.5))) == Level.EDITED
    assert _level(_cand(_affine(inliers=25, matches=30, residual=1.51))) == Level.SIMILAR


def test_many_affine_inliers_on_a_small_area_are_same_room_not_edited() -> None:
    assert _level(_cand(_affine(inliers=100, matches=120, coverage=0.2))) == Level.SAME_ROOM


def test_small_phash_distance_alone_is_an_edited_copy() -> None:
    assert _level(_cand(None, ph=4)) == Level.EDITED
    assert _level(_cand(None, ph=5)) == Level.SIMILAR


def test_same_room_at_the_edges() -> None:
    assert _level(_cand(_epipolar(inliers=30, matches=100))) == Level.SAME_ROOM
    assert _level(_cand(_epipolar(inliers=29, matches=96))) == Level.SIMILAR
    assert _level(_cand(_epipolar(inliers=30, matches=101))) == Level.SIMILAR
    assert _level(_cand(_epipolar(coverage=0.09))) == Level.SIMILAR
    assert _level(_cand(_epipolar(), score=0.29)) is None


def test_similar_floor_and_below() -> None:
    assert _level(_cand(None, score=0.6)) == Level.SIMILAR
    assert _level(_cand(None, score=0.59)) is None


def test_evidence_carries_hash_distance_and_inliers() -> None:
    match = classify(_cand(_affine(), ph=12), T)
    assert match is not None
    assert match.evidence["phash_distance"] == 12
    assert match.evidence["affine_inliers"] == 100
    assert match.evidence["model"] == "affine"
    assert json.dumps(match.evidence)


def test_rank_matches_orders_by_level_then_score() -> None:
    matches = [
        Match(1, Level.SIMILAR, 0.99),
        Match(2, Level.SAME_ROOM, 0.2),
        Match(3, Level.EDITED, 0.5),
        Match(4, Level.EDITED, 0.9),
        Match(5, Level.EXACT, 1.0),
    ]
    assert [m.id for m in rank_matches(matches)] == [5, 4, 3, 2, 1]


def test_thresholds_round_trip_through_a_dict_and_refuse_unknown_keys() -> None:
    data = json.loads(json.dumps(T.to_dict()))
    assert LevelThresholds.from_dict(data) == T
    with pytest.raises(ValueError, match="unknown LevelThresholds fields: unknown"):
        LevelThresholds.from_dict({**data, "unknown": 1})
    assert set(data) == {f.name for f in dataclasses.fields(LevelThresholds)}


def test_merge_hits_keeps_the_best_score_per_id() -> None:
    merged = merge_hits(
        (np.array([[0.9, 0.5]]), np.array([[1, 2]])), (np.array([[0.7, 0.8, 0.1]]), np.array([[1, 2, -1]]))
    )
    assert merged == {1: 0.9, 2: 0.8}


def _scene(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (400, 300), (200, 190, 180))
    draw = ImageDraw.Draw(img)
    for _ in range(70):
        x, y = int(rng.integers(0, 380)), int(rng.integers(0, 280))
        w, h = (int(v) for v in rng.integers(8, 60, 2))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


@pytest.fixture(scope="module")
def library() -> dict[int, StoredEvidence]:
    cfg = LocalConfig(max_side=400)
    photos = {i: _scene(i) for i in range(3)}
    return {i: StoredEvidence(pixel_sha256(p), phash(p), extract_local(p, cfg)) for i, p in photos.items()}


def test_match_shortlist_finds_exact_and_mirrored_copies(library: dict[int, StoredEvidence]) -> None:
    cfg = LocalConfig(max_side=400)
    exact = _scene(0)
    q_exact = QueryEvidence(pixel_sha256(exact), phash(exact), extract_local(exact, cfg))
    out = match_shortlist(q_exact, {0: 1.0, 1: 0.7, 2: 0.65}, library.get, T, cfg)
    assert out[0].id == 0
    assert out[0].level == Level.EXACT

    flipped = ImageOps.mirror(_scene(1)).crop((20, 10, 380, 290))
    q_flip = QueryEvidence(pixel_sha256(flipped), phash(flipped), extract_local(flipped, cfg))
    out = match_shortlist(q_flip, {0: 0.7, 1: 0.9, 2: 0.65}, library.get, T, cfg)
    assert out[0].id == 1
    assert out[0].level == Level.EDITED
    assert out[0].evidence["mirrored"] is True
    assert all(m.level == Level.SIMILAR for m in out[1:])


def test_match_shortlist_on_a_thread_pool_gives_the_serial_answer(library: dict[int, StoredEvidence]) -> None:
    cfg = LocalConfig(max_side=400)
    flipped = ImageOps.mirror(_scene(1)).crop((20, 10, 380, 290))
    query = QueryEvidence(pixel_sha256(flipped), phash(flipped), extract_local(flipped, cfg))
    shortlist = {0: 0.7, 1: 0.9, 2: 0.65, 99: 0.8}  # 99 has no stored evidence: skipped either way
    seen: list[int] = []

    def pool_map(fn: Any, items: Any) -> Any:
        work = list(items)
        seen.extend(ident for _, ident, _ in work)
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(fn, work))

    serial = match_shortlist(query, shortlist, library.get, T, cfg)
    threaded = match_shortlist(query, shortlist, library.get, T, cfg, mapper=pool_map)
    assert sorted(seen) == [0, 1, 2, 99]  # every candidate went through the given mapper
    assert [(m.id, m.level, m.score) for m in threaded] == [(m.id, m.level, m.score) for m in serial]
    assert threaded[0].id == 1 and threaded[0].level == Level.EDITED


def test_fits_needed_skips_ransac_only_below_every_level_s_inlier_threshold() -> None:
    cfg = fits_needed(LocalConfig(), T)
    assert cfg.min_matches == min(T.edited_min_inliers, T.same_room_min_inliers) == 20
    assert cfg.min_matches_epipolar == T.same_room_min_inliers == 30
    loose = dataclasses.replace(T, edited_min_inliers=4, same_room_min_inliers=6)
    assert fits_needed(LocalConfig(), loose).min_matches == LocalConfig().min_matches  # never lowered


def test_fits_needed_leaves_every_level_as_the_full_fit_gives_it(library: dict[int, StoredEvidence]) -> None:
    cfg = LocalConfig(max_side=400)
    gated = fits_needed(cfg, T)
    mirrored_crop = ImageOps.mirror(_scene(1)).crop((20, 10, 380, 290))
    queries = [mirrored_crop, _scene(0).crop((0, 0, 200, 150)), _scene(7)]
    fitted_less = 0
    for img in queries:
        feats = extract_local(img, cfg)
        for ident, stored in library.items():
            full, cheap = verify(feats, stored.features, cfg), verify(feats, stored.features, gated)
            levels = [_level(Candidate(ident, 0.7, False, None, v)) for v in (full, cheap)]
            assert levels[0] == levels[1]
            fitted_less += full.model != cheap.model
    assert fitted_less > 0  # some pair had too few matches for a level and skipped its fits


def test_match_shortlist_computes_a_long_query_s_rootsift_once_for_all_candidates(
    library: dict[int, StoredEvidence], monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.ml.match import local as localmatch

    cfg = LocalConfig(max_side=400, n_features=600, verify_features=100)
    img = ImageOps.mirror(_scene(1)).crop((20, 10, 380, 290))
    feats = extract_local(img, cfg)
    assert len(feats) > cfg.verify_features  # as a stored photo used as the query
    query = QueryEvidence(pixel_sha256(img), phash(img), feats)
    shortlist = {0: 0.7, 1: 0.9, 2: 0.65}
    calls: list[int] = []
    real = localmatch.root_sift
    monkeypatch.setattr(localmatch, "root_sift", lambda d: calls.append(len(d)) or real(d))
    out = match_shortlist(query, shortlist, library.get, T, cfg)
    assert out[0].id == 1 and out[0].level == Level.EDITED
    # One per candidate, plus the query and its mirror once each (not once per candidate).
    assert len(calls) <= len(shortlist) + 2
