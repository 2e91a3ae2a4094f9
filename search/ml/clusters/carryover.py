"""Moderator decisions survive re-clustering: match prior clusters to new ones and re-apply constraints.

Pure functions over integer photo ids. A prior cluster P matches new cluster C when a share of at least
`min_overlap` of P's (still present) members landed in C; among those candidates a Hungarian assignment on
member overlap makes the mapping one-to-one. Moderator moves ("photo p belongs to P") are must-links to P's
identity; "not in this cluster" decisions are cannot-links and send the photo to noise (-1) when it lands in
that cluster again. Anything the rules cannot settle is reported as a conflict for a moderator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class PriorCluster:
    """A cluster of the previous run that carries a decision (a name, an approval, ...)."""

    key: int
    name: str
    state: str
    members: set[int]


@dataclass
class Constraints:
    """Moderator decisions: moves[p] = K (p belongs with K), cannot_link[p] = {K, ...} (p is not in K)."""

    moves: dict[int, int] = field(default_factory=dict)
    cannot_link: dict[int, set[int]] = field(default_factory=dict)


@dataclass
class CarryOver:
    """What carried over: new label -> prior key, applied constraints and conflicts to review."""

    mapping: dict[int, int]
    applied_moves: int
    applied_cannot_links: int
    conflicts: list[dict[str, Any]]
    summary: dict[str, Any]


def _overlaps(
    prior: list[PriorCluster], labels: np.ndarray, pos: dict[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(P, K) member counts of each prior in each new cluster and (P,) counts of present members."""
    n_new = int(labels.max()) + 1 if len(labels) else 0
    counts = np.zeros((len(prior), n_new), dtype=np.int64)
    present = np.zeros(len(prior), dtype=np.int64)
    for i, p in enumerate(prior):
        rows = np.array([pos[m] for m in p.members if m in pos], dtype=np.int64)
        present[i] = len(rows)
        got = labels[rows]
        counts[i] = np.bincount(got[got >= 0], minlength=n_new)[:n_new]
    return counts, present


def _match(counts: np.ndarray, shares: np.ndarray, min_overlap: float) -> dict[int, int]:
    """One-to-one new label -> prior index, maximising overlap among pairs with share >= min_overlap."""
    if counts.size == 0:
        return {}
    weight = np.where(shares >= min_overlap, counts, 0)
    rows, cols = linear_sum_assignment(-weight)
    return {int(c): int(r) for r, c in zip(rows, cols, strict=True) if weight[r, c] > 0}


def _structure_conflicts(
    prior: list[PriorCluster],
    shares: np.ndarray,
    matched: dict[int, int],
    min_overlap: float,
    split_share: float,
) -> list[dict[str, Any]]:
    """Merged priors (several claim one new cluster), split priors and priors with no match."""
    conflicts: list[dict[str, Any]] = []
    by_prior = {p: c for c, p in matched.items()}
    for c in range(shares.shape[1]):
        claim = np.flatnonzero(shares[:, c] >= min_overlap)
        if len(claim) > 1:
            kept = prior[matched[c]].key if c in matched else None
            conflicts.append(
                {"type": "merged", "new_label": c, "priors": [prior[i].key for i in claim], "kept": kept}
            )
    merged = {k for x in conflicts for k in x["priors"] if k != x["kept"]}
    for i, p in enumerate(prior):
        parts = np.flatnonzero(shares[i] >= split_share)
        if len(parts) > 1:
            conflicts.append(
                {
                    "type": "split",
                    "prior": p.key,
                    "new_labels": parts.tolist(),
                    "shares": [round(float(shares[i, c]), 3) for c in parts],
                    "matched_to": by_prior.get(i),
                }
            )
        elif i not in by_prior and p.key not in merged:
            best = int(shares[i].argmax()) if shares.shape[1] else -1
            conflicts.append(
                {
                    "type": "lost",
                    "prior": p.key,
                    "best_label": best,
                    "best_share": round(float(shares[i].max()), 3) if shares.shape[1] else 0.0,
                }
            )
    return conflicts


def _apply_constraints(
    labels: np.ndarray,
    pos: dict[int, int],
    constraints: Constraints,
    cluster_of: dict[int, int],
    key_of: dict[int, int],
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Apply moves then cannot-links to labels in place; returns counts and unresolved conflicts."""
    counts = {"moves_applied": 0, "moves_satisfied": 0, "moves_missing_photo": 0, "cannot_links_applied": 0}
    conflicts: list[dict[str, Any]] = []
    for photo, key in sorted(constraints.moves.items()):
        if photo not in pos:
            counts["moves_missing_photo"] += 1
        elif key in constraints.cannot_link.get(photo, set()):
            conflicts.append({"type": "contradictory_constraints", "photo": photo, "prior": key})
        elif key not in cluster_of:
            conflicts.append({"type": "move_target_unmatched", "photo": photo, "prior": key})
        elif labels[pos[photo]] == cluster_of[key]:
            counts["moves_satisfied"] += 1
        else:
            labels[pos[photo]] = cluster_of[key]
            counts["moves_applied"] += 1
    for photo, keys in sorted(constraints.cannot_link.items()):
        row = pos.get(photo)
        if (
            row is not None
            and key_of.get(int(labels[row])) in keys
            and constraints.moves.get(photo) not in keys
        ):
            labels[row] = -1
            counts["cannot_links_applied"] += 1
    return counts, conflicts


def carry_over(
    prior: list[PriorCluster],
    new_labels: np.ndarray,
    photo_ids: np.ndarray,
    constraints: Constraints,
    min_overlap: float = 0.5,
    split_share: float = 0.25,
) -> tuple[np.ndarray, CarryOver]:
    """Match prior clusters to new labels, apply moderator constraints; returns (adjusted labels, report)."""
    labels = np.asarray(new_labels, dtype=np.int64).copy()
    pos = {int(p): i for i, p in enumerate(np.asarray(photo_ids).tolist())}
    counts, present = _overlaps(prior, labels, pos)
    shares = counts / np.maximum(present, 1)[:, None]
    matched = _match(counts, shares, min_overlap)
    mapping = {c: prior[i].key for c, i in matched.items()}
    conflicts = _structure_conflicts(prior, shares, matched, min_overlap, split_share)
    cluster_of = {k: c for c, k in mapping.items()}
    applied, more = _apply_constraints(labels, pos, constraints, cluster_of, mapping)
    conflicts += more
    n_new = counts.shape[1]
    carried = [
        {
            "prior": prior[i].key,
            "name": prior[i].name,
            "state": prior[i].state,
            "new_label": c,
            "share": round(float(shares[i, c]), 3),
        }
        for c, i in sorted(matched.items())
    ]
    kinds: dict[str, int] = {}
    for conflict in conflicts:
        kinds[conflict["type"]] = kinds.get(conflict["type"], 0) + 1
    summary: dict[str, Any] = {
        "priors": len(prior),
        "carried": len(carried),
        "new_clusters": n_new,
        "new_unmatched": n_new - len(carried),
        "carried_clusters": carried,
        "conflicts": kinds,
        **applied,
    }
    report = CarryOver(
        mapping=mapping,
        applied_moves=applied["moves_applied"],
        applied_cannot_links=applied["cannot_links_applied"],
        conflicts=conflicts,
        summary=summary,
    )
    return labels, report
