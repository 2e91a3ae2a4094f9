"""The same-room evaluation set: split by room, recall ranks, room-bootstrap intervals, retrieval ideas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.same_room import retrieval
from bench.same_room.eval_report import Query, bootstrap_ci, macro_recall, ranks, recall_table
from bench.same_room.eval_set import (
    EvalSet,
    Photo,
    bucket,
    house_photos,
    load_image,
    part_of,
    queries_of,
    rotation_deg,
    time_bucket,
)


def _photos(rooms: int, views: int) -> list[Photo]:
    return [
        Photo(f"src/{r}_{v}.jpg", Path(f"/none/{r}_{v}.jpg"), f"room{r}", "src", f"room{r}")
        for r in range(rooms)
        for v in range(views)
    ]


def test_split_puts_every_room_wholly_in_one_part_and_is_the_same_on_every_run() -> None:
    photos = _photos(40, 3)
    es = EvalSet(photos, [])
    calib = queries_of(es, photos, "calibration", seed=0)
    test = queries_of(es, photos, "test", seed=0)
    assert {q.room for q in calib}.isdisjoint({q.room for q in test})
    assert len(calib) + len(test) == len(photos)
    assert len(calib) % 3 == 0 and len(test) % 3 == 0  # every view of a room goes with it
    assert 10 <= len(test) // 3 <= 30  # the hash splits about half and half
    again = queries_of(es, photos, "test", seed=0)
    assert [q.index for q in again] == [q.index for q in test]


def test_split_seed_changes_the_split_and_a_house_group_keeps_its_rooms_together() -> None:
    groups = [f"room{i}" for i in range(200)]
    assert [part_of(g, 0) for g in groups] != [part_of(g, 1) for g in groups]
    pan = [
        Photo(f"p/{h}_{k}", Path("/none"), f"{h}_{k}", "houses_pan", f"house:{h}")
        for h in range(30)
        for k in "ab"
    ]
    parts = {(p.group, part_of(p.group, 0)) for p in pan}
    assert len(parts) == 30  # one part per house, whichever of its rooms


def test_queries_carry_their_room_s_other_views_and_gap_buckets() -> None:
    photos = _photos(2, 3)
    gaps = {
        frozenset((photos[0].key, photos[1].key)): "30-60",
        frozenset((photos[0].key, photos[2].key)): ">=90",
    }
    found = queries_of(EvalSet(photos, [], gaps), photos, "all", seed=0)
    assert found[0].positives == (1, 2)
    assert found[0].gaps == ("30-60", ">=90")
    assert found[3].positives == (4, 5) and found[3].gaps == ("unknown", "unknown")


def test_gap_bucket_edges_time_buckets_and_rotation_angle() -> None:
    assert [bucket(g) for g in (0.0, 14.9, 15.0, 59.9, 60.0, 90.0, None)] == [
        "<15",
        "<15",
        "15-30",
        "30-60",
        "60-90",
        ">=90",
        "unknown",
    ]
    assert [time_bucket(t) for t in (1.0, 2.0, 4.9, 16.0)] == ["dt<2s", "dt2-5s", "dt2-5s", "dt>=5s"]
    c, s = math.cos(math.radians(64)), math.sin(math.radians(64))
    assert rotation_deg(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])) == pytest.approx(64.0)


def _tiny() -> tuple[np.ndarray, list[Query]]:
    # Collection 0..4: room A = {0, 1, 2}, the rest distractors.
    scores = np.array(
        [
            [9.0, 0.5, 0.1, 0.7, 0.2],  # query 0: positive 1 behind distractor 3, positive 2 behind 3 and 4
            [0.9, 9.0, 0.3, 0.3, 0.2],  # query 1: positive 0 first; positive 2 ties distractor 3
        ]
    )
    queries = [Query(0, "A", "s", (1, 2), ("<15", ">=90")), Query(1, "A", "s", (0, 2), ("<15", "30-60"))]
    return scores, queries


def test_ranks_ignore_the_query_itself_and_count_ties_against_the_positive() -> None:
    scores, queries = _tiny()
    best, pair = ranks(scores, queries)
    assert best.tolist() == [1, 0]
    assert pair[0].tolist() == [1, 2]
    assert pair[1].tolist() == [0, 1]  # tie with distractor 3: ranked behind it


def test_recall_table_reports_room_and_pair_recall_per_bucket() -> None:
    scores, queries = _tiny()
    table = recall_table(scores, queries, ks=(1, 2), n_boot=50)
    assert table["room"]["s"]["recall@1"]["mean"] == 0.5
    assert table["room"]["s"]["recall@2"]["mean"] == 1.0
    assert table["pair"]["s/<15"]["recall@1"]["mean"] == 0.5
    assert table["pair"]["s/>=90"]["recall@2"]["mean"] == 0.0
    assert table["pair"]["*all/30-60"]["recall@2"]["mean"] == 1.0
    assert macro_recall(table, k=1) == 0.5


def test_bootstrap_averages_rooms_not_photos() -> None:
    hits = np.array([1.0] * 10 + [0.0])
    ci = bootstrap_ci(hits, ["big"] * 10 + ["small"], n_boot=4000, seed=1)
    assert ci["mean"] == 0.5 and ci["rooms"] == 2
    # Two rooms: a resample holds 0, 1 or 2 copies of the hit room, so the 95% interval spans 0 to 1.
    assert (ci["lo"], ci["hi"]) == (0.0, 1.0)


def test_bootstrap_interval_width_matches_the_binomial_standard_error() -> None:
    hits = np.array([1.0, 0.0] * 50)
    ci = bootstrap_ci(hits, [f"r{i}" for i in range(100)], n_boot=4000, seed=0)
    assert ci["lo"] < 0.5 < ci["hi"]
    assert ci["hi"] - ci["lo"] == pytest.approx(2 * 1.96 * 0.05, abs=0.025)
    same = bootstrap_ci(np.ones(6), list("aabbcc"))
    assert (same["lo"], same["mean"], same["hi"]) == (1.0, 1.0, 1.0)


def test_bootstrap_rejects_mismatched_labels() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones(3), ["a", "b"])


def test_query_expansion_and_k_reciprocal_reduce_to_cosine_when_switched_off() -> None:
    z = retrieval.unit(np.random.default_rng(0).normal(size=(30, 8)))
    q = [0, 5, 9]
    assert np.allclose(retrieval.alpha_qe(z, q, n=0, alpha=3.0, dba=False), retrieval.cosine(z, q), atol=1e-5)
    assert np.allclose(retrieval.k_reciprocal(z, q, k=5, lam=0.0), retrieval.cosine(z, q), atol=1e-5)


def test_query_expansion_pulls_in_the_neighbour_s_neighbour() -> None:
    # 0 and 1 are close, 1 and 2 are close, 0 and 2 less so: expanding query 0 with 1 moves 2 up.
    z = retrieval.unit(np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.3, 0.95, 0.0], [0.5, 0.0, 0.87]]))
    plain = retrieval.cosine(z, [0])[0]
    expanded = retrieval.alpha_qe(z, [0], n=1, alpha=1.0, dba=False)[0]
    assert plain[3] > plain[2] and expanded[2] > expanded[3]


def test_pca_whitening_decorrelates_and_equalises_the_axes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * np.array([10.0, 5.0, 1.0, 1.0, 0.5, 0.1])
    w = retrieval.pca_whiten(x, dims=6, shrink=0.0)
    assert np.allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-5)
    var = w.var(axis=0)
    assert var.max() / var.min() < 1.5  # raw axes' variances differ 10,000-fold


def test_pan_originals_never_become_distractors_and_crops_are_half_width(tmp_path: Path) -> None:
    folder = tmp_path / "houses"
    folder.mkdir()
    names = ["5_kitchen", "9_kitchen", "21_kitchen", "101_kitchen", "120_frontal", "151_bedroom"]
    for name in names:
        Image.new("RGB", (40, 20), (10, 20, 30)).save(folder / f"{name}.jpg")
    photos, distractors = house_photos(tmp_path)
    by_source = {s: [p for p in photos if p.source == s] for s in ("houses_pan3", "houses_pan2", "relisting")}
    assert [p.key.rsplit("#", 1)[1] for p in by_source["houses_pan3"]] == ["L", "C", "R"]
    assert [p.key.rsplit("#", 1)[1] for p in by_source["houses_pan2"]] == ["L", "R"]
    assert {p.room for p in by_source["relisting"]} == {"relisting_9_21_kitchen"}
    assert sorted(p.path.stem for p in distractors) == ["120_frontal", "5_kitchen"]
    left, right = by_source["houses_pan2"]
    assert (
        left.yaw is not None
        and right.yaw is not None
        and abs(left.yaw - right.yaw) == pytest.approx(42.0, abs=1.0)
    )
    assert load_image(left).size == (20, 20)
