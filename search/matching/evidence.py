"""Match evidence in a realtor's words: one plain sentence per match; the raw numbers stay one click away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Below this share of one side's keypoint spread covered by the inliers, the other photo shows only part of
# it: a crop (or added borders) rather than the whole picture.
_CROPPED_BELOW = 0.85
_ROTATED_FROM_DEG = 3.0
_LEVEL_LABELS = {
    "exact": "Exact copy",
    "edited": "Edited copy",
    "same_room": "Same room, other angle",
    "similar": "Similar look",
}


def level_label(level: str) -> str:
    """A match level's name as the pages show it ("same_room" -> "Same room, other angle")."""
    return _LEVEL_LABELS.get(level, level)


def _share(part: Any, whole: Any) -> int | None:
    try:
        return round(100 * float(part) / float(whole)) if float(whole) > 0 else None
    except (TypeError, ValueError):
        return None


def _edit_kinds(ev: Mapping[str, Any]) -> list[str]:
    kinds = []
    coverages = [ev.get("affine_coverage"), ev.get("candidate_coverage")]
    if any(isinstance(c, (int, float)) and 0 < c < _CROPPED_BELOW for c in coverages):
        kinds.append("cropped")
    if abs(float(ev.get("rotation_deg") or 0.0)) >= _ROTATED_FROM_DEG:
        kinds.append("rotated")
    if ev.get("mirrored") is True:
        kinds.append("mirrored")
    return kinds


def _edited(ev: Mapping[str, Any]) -> str:
    kinds = _edit_kinds(ev)
    head = "Same photo, " + (" and ".join(kinds) if kinds else "edited")
    share = _share(ev.get("affine_inliers"), ev.get("matches"))
    if share is not None and ev.get("affine_inliers"):
        return f"{head}; {share} % of it matches"
    if ev.get("phash_distance") is not None:
        return f"{head}; its fingerprint is almost identical"
    return head


def evidence_words(level: str, evidence: Mapping[str, Any]) -> str:
    """One plain sentence saying how a match relates to the query (level plus its deciding evidence)."""
    if level == "exact":
        return "Exact copy (same pixels)"
    if level == "edited":
        return _edited(evidence)
    if level == "same_room":
        inliers = evidence.get("inliers")
        if isinstance(inliers, int) and inliers > 0:
            return f"Same room from another angle: {inliers} matching details"
        return "Same room from another angle"
    score = evidence.get("global_score")
    if isinstance(score, (int, float)):
        return f"Similar look ({max(0, round(100 * score))} %)"
    return "Similar look"
