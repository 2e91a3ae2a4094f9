"""Match evidence in plain words."""

from __future__ import annotations

import pytest

from search.matching.evidence import evidence_words, level_label


def test_an_exact_copy_says_same_pixels() -> None:
    assert evidence_words("exact", {"phash_distance": 0}) == "Exact copy (same pixels)"


def test_a_cropped_copy_says_cropped_and_how_much_of_it_matches() -> None:
    ev = {"affine_inliers": 221, "matches": 230, "affine_coverage": 0.97, "candidate_coverage": 0.7}
    assert evidence_words("edited", ev) == "Same photo, cropped; 96 % of it matches"


def test_a_mirrored_copy_says_mirrored() -> None:
    ev = {"affine_inliers": 150, "matches": 200, "affine_coverage": 0.95, "candidate_coverage": 0.95}
    assert evidence_words("edited", {**ev, "mirrored": True}) == "Same photo, mirrored; 75 % of it matches"


def test_several_edits_are_named_together() -> None:
    ev = {
        "affine_inliers": 50,
        "matches": 100,
        "affine_coverage": 0.6,
        "rotation_deg": -90.0,
        "mirrored": True,
    }
    assert evidence_words("edited", ev) == "Same photo, cropped and rotated and mirrored; 50 % of it matches"


def test_a_copy_found_by_its_fingerprint_alone_says_so() -> None:
    words = evidence_words("edited", {"phash_distance": 6, "global_score": 0.9})
    assert words == "Same photo, edited; its fingerprint is almost identical"


def test_the_same_room_counts_its_matching_details() -> None:
    ev = {"inliers": 142, "matches": 400, "coverage": 0.4}
    assert evidence_words("same_room", ev) == "Same room from another angle: 142 matching details"


@pytest.mark.parametrize(("score", "words"), [(0.7412, "Similar look (74 %)"), (-0.02, "Similar look (0 %)")])
def test_a_similar_look_gives_its_likeness_as_a_percentage_never_negative(score: float, words: str) -> None:
    assert evidence_words("similar", {"global_score": score}) == words


def test_no_wording_shows_raw_evidence_keys() -> None:
    ev = {"inliers": 60, "affine_inliers": 60, "matches": 80, "phash_distance": 3, "global_score": 0.8}
    for level in ("exact", "edited", "same_room", "similar"):
        words = evidence_words(level, ev)
        assert "inlier" not in words and "pHash" not in words and "_" not in words


def test_levels_have_their_page_names() -> None:
    assert level_label("same_room") == "Same room, other angle" and level_label("edited") == "Edited copy"
