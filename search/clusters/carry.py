"""Moderator decisions of the current run, fed to the pure carry-over and described for the run summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Q

from search.ml.clusters.carryover import CarryOver, Constraints, PriorCluster, carry_over
from search.models import Cluster, ClusterDecision, ClusteringRun, Membership

MAX_CONFLICTS = 500
ACTIVE_STATES = (Cluster.State.UNREVIEWED, Cluster.State.APPROVED)


@dataclass
class Carried:
    """New labels after carry-over, the report, and the prior clusters by key."""

    labels: np.ndarray  # (N,) int64, -1 = noise
    report: CarryOver | None = None
    priors: dict[int, Cluster] = field(default_factory=dict)
    previous_run: int | None = None

    def prior_for(self, label: int) -> Cluster | None:
        """The prior cluster a new label carries on, if any."""
        if self.report is None:
            return None
        key = self.report.mapping.get(label)
        return self.priors.get(key) if key is not None else None


def merge_aliases(run: ClusteringRun) -> dict[int, int]:
    """key of each merged cluster -> key of the active cluster it ended up in."""
    clusters = {c.pk: c for c in Cluster.objects.filter(run=run).only("id", "key", "state", "merged_into_id")}
    aliases: dict[int, int] = {}
    for cluster in clusters.values():
        target, seen = cluster, set()
        while (
            target.state == Cluster.State.MERGED
            and target.merged_into_id in clusters
            and target.pk not in seen
        ):
            seen.add(target.pk)
            target = clusters[target.merged_into_id]
        if target is not cluster:
            aliases[cluster.key] = target.key
    return aliases


def decision_constraints(run: ClusteringRun) -> Constraints:
    """Active decisions as constraints: the latest must-link of a photo wins; must-links follow merges."""
    aliases = merge_aliases(run)
    constraints = Constraints()
    # Keys are cluster ids, unique across encoders: only this encoder's clusters concern this run.
    keys = Cluster.objects.filter(run__encoder=run.encoder).values("key")
    rows = (
        ClusterDecision.objects.filter(active=True, cluster_key__in=keys)
        .order_by("id")
        .values_list("photo_id", "kind", "cluster_key")
    )
    for photo_id, kind, key in rows:
        if kind == ClusterDecision.Kind.MUST_LINK:
            constraints.moves[photo_id] = aliases.get(key, key)
        else:
            constraints.cannot_link.setdefault(photo_id, set()).add(key)
    return constraints


def prior_clusters(run: ClusteringRun, move_keys: set[int]) -> list[Cluster]:
    """Clusters whose identity must survive: named, approved, or the target of a moderator move."""
    wanted = Q(state=Cluster.State.APPROVED) | ~Q(name="") | Q(key__in=move_keys)
    return list(Cluster.objects.filter(run=run, state__in=ACTIVE_STATES).filter(wanted).order_by("id"))


def carry_from(previous: ClusteringRun | None, labels: np.ndarray, photo_ids: np.ndarray) -> Carried:
    """Match the previous run's decided clusters to new labels and apply moderator constraints."""
    if previous is None:
        return Carried(labels=np.asarray(labels, dtype=np.int64).copy())
    constraints = decision_constraints(previous)
    rows = prior_clusters(previous, set(constraints.moves.values()))
    members: dict[int, set[int]] = {c.pk: set() for c in rows}
    for cluster_id, photo_id in Membership.objects.filter(run=previous, cluster__in=rows).values_list(
        "cluster_id", "photo_id"
    ):
        members[cluster_id].add(photo_id)
    priors = [PriorCluster(key=c.key, name=c.name, state=c.state, members=members[c.pk]) for c in rows]
    new_labels, report = carry_over(priors, labels, photo_ids, constraints)
    return Carried(
        labels=new_labels, report=report, priors={c.key: c for c in rows}, previous_run=previous.pk
    )


def summary(carried: Carried, by_label: dict[int, Cluster]) -> dict[str, Any]:
    """What carried over and what needs a moderator, with names and new cluster ids."""
    if carried.report is None:
        return {
            "previous_run": None,
            "carried": 0,
            "carried_clusters": [],
            "conflicts": [],
            "conflict_count": 0,
        }
    report = carried.report
    names = {key: c.display_name for key, c in carried.priors.items()}
    done = [
        {
            "prior_cluster": carried.priors[item["prior"]].pk,
            "name": item["name"],
            "state": item["state"],
            "cluster": by_label[item["new_label"]].pk,
            "share": item["share"],
        }
        for item in report.summary["carried_clusters"]
    ]
    conflicts = [{**c, "text": conflict_text(c, names, by_label)} for c in report.conflicts[:MAX_CONFLICTS]]
    counts = {k: v for k, v in report.summary.items() if k != "carried_clusters"}
    return {
        **counts,
        "previous_run": carried.previous_run,
        "carried": len(done),
        "carried_clusters": done,
        "conflicts": conflicts,
        "conflict_count": len(report.conflicts),
    }


def conflict_text(conflict: dict[str, Any], names: dict[int, str], by_label: dict[int, Cluster]) -> str:
    """One readable sentence about a carry-over conflict."""

    def name(key: Any) -> str:
        return f"“{names.get(key, f'cluster key {key}')}”"

    def new(label: Any) -> str:
        cluster = by_label.get(int(label)) if label is not None else None
        return f"new cluster #{cluster.pk}" if cluster else "noise"

    kind = conflict["type"]
    if kind == "merged":
        kept = f"; it keeps {name(conflict['kept'])}" if conflict.get("kept") is not None else ""
        joined = ", ".join(name(k) for k in conflict["priors"])
        return f"{joined} fell into one {new(conflict['new_label'])}{kept}."
    if kind == "split":
        parts = ", ".join(
            f"{new(lab)} ({share:.0%})"
            for lab, share in zip(conflict["new_labels"], conflict["shares"], strict=True)
        )
        return f"{name(conflict['prior'])} split over {parts}."
    if kind == "lost":
        return (
            f"{name(conflict['prior'])} has no match in the new run "
            f"(at most {conflict['best_share']:.0%} of its photos in {new(conflict['best_label'])})."
        )
    if kind == "contradictory_constraints":
        return f"Photo #{conflict['photo']} is both moved into and kept out of {name(conflict['prior'])}."
    if kind == "move_target_unmatched":
        return f"Photo #{conflict['photo']} was moved into {name(conflict['prior'])}, which has no match now."
    return str(conflict)
