"""Moderator actions on the current run (name, approve, merge, split, move, noise, undo), each recorded.

Every action stores what undoing it needs (the memberships and clusters as they were, the decisions it
created or retired), so "undo" restores the exact previous state. Moves and "not in this cluster" choices
also become ClusterDecision rows: the constraints that re-clustering re-applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from search.models import Cluster, ClusterDecision, ClusteringRun, Membership, ModeratorAction

Kind = ModeratorAction.Kind
ACTIVE_STATES = (Cluster.State.UNREVIEWED, Cluster.State.APPROVED)
MAX_NAME = 100
_CHUNK = 5000


def _run_locked(run_id: int) -> ClusteringRun:
    """The run, locked for this transaction; only the current, ready run can be edited."""
    run = ClusteringRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or not run.is_current:
        raise ValidationError("only the current clustering run can be edited; older runs are read-only")
    return run


def _cluster_locked(cluster_id: int, run: ClusteringRun | None = None) -> tuple[ClusteringRun, Cluster]:
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None or (run is not None and cluster.run_id != run.pk):
        raise ValidationError("no such cluster in this run")
    run = run or _run_locked(cluster.run_id)
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    if cluster.state not in ACTIVE_STATES:
        raise ValidationError(
            f"{cluster.display_name} was {cluster.get_state_display()}; it cannot be edited"
        )
    return run, cluster


def _record(
    run: ClusteringRun, user: Any, kind: str, description: str, payload: dict[str, Any], undo: dict[str, Any]
) -> ModeratorAction:
    return ModeratorAction.objects.create(
        run=run, user=user, kind=kind, description=description[:500], payload=payload, undo_data=undo
    )


def _photos(n: int) -> str:
    return f"{n} photo" if n == 1 else f"{n} photos"


def _cluster_snapshot(*clusters: Cluster) -> list[list[Any]]:
    return [[c.pk, c.name, c.state, c.merged_into_id] for c in clusters]


def clean_name(name: str) -> str:
    """A cluster name with whitespace collapsed; refuses over-long names."""
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise ValidationError(f"a cluster name has at most {MAX_NAME} characters")
    return name


def cluster_name(cluster_id: int, name: str, *, user: Any) -> ModeratorAction:
    """Name (or with "" un-name) a cluster; the name becomes the room-type tag of its photos."""
    name = clean_name(name)
    with transaction.atomic():
        run, cluster = _cluster_locked(cluster_id)
        undo = {"clusters": _cluster_snapshot(cluster)}
        old = cluster.display_name
        cluster.name = name
        cluster.save(update_fields=["name", "updated_at"])
        text = f"Named {old} “{name}”" if name else f"Cleared the name of {old}"
        return _record(run, user, Kind.NAME, text, {"cluster": cluster.pk, "name": name}, undo)


def cluster_approve(cluster_id: int, *, user: Any, approved: bool = True) -> ModeratorAction:
    """Approve a cluster (or withdraw the approval)."""
    with transaction.atomic():
        run, cluster = _cluster_locked(cluster_id)
        undo = {"clusters": _cluster_snapshot(cluster)}
        cluster.state = Cluster.State.APPROVED if approved else Cluster.State.UNREVIEWED
        cluster.save(update_fields=["state", "updated_at"])
        text = f"{'Approved' if approved else 'Withdrew approval of'} {cluster.display_name}"
        return _record(run, user, Kind.APPROVE, text, {"cluster": cluster.pk, "approved": approved}, undo)


def clusters_merge(target_id: int, source_ids: list[int], *, user: Any) -> ModeratorAction:
    """Merge source clusters into the target: their photos move, they are marked merged."""
    sources_wanted = sorted(set(source_ids) - {target_id})
    if not sources_wanted:
        raise ValidationError("choose at least one other cluster to merge into this one")
    with transaction.atomic():
        run, target = _cluster_locked(target_id)
        sources = [_cluster_locked(cid, run)[1] for cid in sources_wanted]
        undo: dict[str, Any] = {"clusters": _cluster_snapshot(*sources)}
        undo["memberships"] = _membership_snapshot(Membership.objects.filter(run=run, cluster__in=sources))
        Membership.objects.filter(run=run, cluster__in=sources).update(cluster=target)
        for source in sources:
            source.state, source.merged_into = Cluster.State.MERGED, target
            source.save(update_fields=["state", "merged_into", "updated_at"])
        moved = len(undo["memberships"])
        names = ", ".join(s.display_name for s in sources)
        text = f"Merged {names} into {target.display_name} ({_photos(moved)})"
        payload = {"cluster": target.pk, "sources": sources_wanted, "photos": moved}
        return _record(run, user, Kind.MERGE, text, payload, undo)


def photos_split(run_id: int, photo_ids: list[int], *, user: Any, name: str = "") -> ModeratorAction:
    """Split selected photos off into a new cluster (their moves become must-links to it)."""
    name = clean_name(name)
    with transaction.atomic():
        run = _run_locked(run_id)
        rows = _selection(run, photo_ids)
        cluster = Cluster.objects.create(run=run, label=None, name=name)
        cluster.key = cluster.pk
        cluster.save(update_fields=["key"])
        action = _record(
            run, user, Kind.SPLIT, "", {"cluster": cluster.pk, "name": name, "photos": photo_ids}, {}
        )
        undo = _retarget(run, rows, cluster, action)
        undo["created_clusters"] = [cluster.pk]
        text = f"Split {_photos(len(undo['memberships']))} off into new cluster {cluster.display_name}"
        return _finish(action, text, undo)


def photos_move(run_id: int, photo_ids: list[int], target_id: int, *, user: Any) -> ModeratorAction:
    """Move photos into a cluster: must-link to it, cannot-link to where each came from."""
    with transaction.atomic():
        run, target = _cluster_locked(target_id)
        if run.pk != run_id:
            raise ValidationError("that cluster belongs to another run")
        rows = [r for r in _selection(run, photo_ids) if r[1] != target.pk]
        if not rows:
            raise ValidationError(f"the selected photos are already in {target.display_name}")
        action = _record(run, user, Kind.MOVE, "", {"cluster": target.pk, "photos": photo_ids}, {})
        undo = _retarget(run, rows, target, action)
        return _finish(action, f"Moved {_photos(len(rows))} into {target.display_name}", undo)


def photos_mark_noise(run_id: int, photo_ids: list[int], *, user: Any) -> ModeratorAction:
    """Take photos out of their clusters ("not in this cluster"): they become noise."""
    with transaction.atomic():
        run = _run_locked(run_id)
        rows = [r for r in _selection(run, photo_ids) if r[1] is not None]
        if not rows:
            raise ValidationError("the selected photos are already noise")
        action = _record(run, user, Kind.NOISE_PHOTOS, "", {"photos": photo_ids}, {})
        undo = _retarget(run, rows, None, action)
        return _finish(action, f"Marked {_photos(len(rows))} as noise", undo)


def cluster_mark_noise(cluster_id: int, *, user: Any) -> ModeratorAction:
    """Dissolve a cluster: all its photos become noise and are kept out of it when re-clustering."""
    with transaction.atomic():
        run, cluster = _cluster_locked(cluster_id)
        rows = _membership_snapshot(Membership.objects.filter(run=run, cluster=cluster))
        action = _record(run, user, Kind.NOISE_CLUSTER, "", {"cluster": cluster.pk, "photos": len(rows)}, {})
        undo = _retarget(run, rows, None, action)
        undo["clusters"] = _cluster_snapshot(cluster)
        cluster.state = Cluster.State.NOISE
        cluster.save(update_fields=["state", "updated_at"])
        return _finish(action, f"Marked {cluster.display_name} ({_photos(len(rows))}) as noise", undo)


def _finish(action: ModeratorAction, description: str, undo: dict[str, Any]) -> ModeratorAction:
    action.description, action.undo_data = description[:500], undo
    action.save(update_fields=["description", "undo_data"])
    return action


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    """Id lists small enough for one SQL parameter list (SQLite allows 32 766)."""
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _selection(run: ClusteringRun, photo_ids: list[int]) -> list[list[Any]]:
    """Snapshot rows of the selected photos that the run holds; refuses an empty selection."""
    if not photo_ids:
        raise ValidationError("select at least one photo")
    rows: list[list[Any]] = []
    for part in _chunks(sorted(set(photo_ids))):
        rows += _membership_snapshot(Membership.objects.filter(run=run, photo_id__in=part))
    if not rows:
        raise ValidationError("none of the selected photos is in this run")
    return rows


def _membership_snapshot(qs: Any) -> list[list[Any]]:
    return [list(row) for row in qs.values_list("photo_id", "cluster_id", "source")]


def _retarget(
    run: ClusteringRun, rows: list[list[Any]], target: Cluster | None, action: ModeratorAction
) -> dict[str, Any]:
    """Put snapshot rows' photos into target (None: noise) and record the decisions; returns undo data."""
    keys = dict(Cluster.objects.filter(run=run).values_list("pk", "key"))
    retired: list[int] = []
    for part in _chunks([row[0] for row in rows]):
        # A new placement supersedes earlier moves of these photos, and a move into K lifts "not in K".
        retire = Q(photo_id__in=part, kind=ClusterDecision.Kind.MUST_LINK)
        if target is not None:
            retire |= Q(photo_id__in=part, kind=ClusterDecision.Kind.CANNOT_LINK, cluster_key=target.key)
        found = ClusterDecision.objects.filter(retire, active=True)
        retired += list(found.values_list("pk", flat=True))
        found.update(active=False)
        Membership.objects.filter(run=run, photo_id__in=part).update(
            cluster=target, source=Membership.Source.MODERATOR
        )
    new: list[ClusterDecision] = []
    for photo_id, old_cluster, _source in rows:
        if old_cluster is not None:
            new.append(_decision(photo_id, ClusterDecision.Kind.CANNOT_LINK, keys[old_cluster], action))
        if target is not None:
            new.append(_decision(photo_id, ClusterDecision.Kind.MUST_LINK, target.key, action))
    ClusterDecision.objects.bulk_create(new, batch_size=2000)
    return {"memberships": rows, "decisions_retired": retired}


def _decision(photo_id: int, kind: str, key: int, action: ModeratorAction) -> ClusterDecision:
    return ClusterDecision(
        photo_id=photo_id, kind=kind, cluster_key=key, created_by=action.user, action=action
    )


def action_undo_last(run_id: int, *, user: Any, expected: int | None = None) -> ModeratorAction:
    """Undo the newest not-yet-undone action of the current run; repeated, it walks back the history.

    expected: the id of the action the moderator was offered; refused if another one is newest by now
    (a second click, or someone else acting meanwhile, must not undo an action nobody was shown).
    """
    with transaction.atomic():
        run = _run_locked(run_id)
        last = (
            ModeratorAction.objects.select_for_update()
            .filter(run=run, undone_by__isnull=True)
            .exclude(kind=Kind.UNDO)
            .order_by("-id")
            .first()
        )
        if expected is not None and (last is None or last.pk != expected):
            raise ValidationError(_not_newest(run, expected, last))
        if last is None:
            raise ValidationError("there is nothing left to undo in this run")
        _restore(run, last)
        undo = _record(run, user, Kind.UNDO, f"Undid: {last.description}", {"undid": last.pk}, {})
        last.undone_by = undo
        last.save(update_fields=["undone_by"])
        return undo


def _not_newest(run: ClusteringRun, expected: int, last: ModeratorAction | None) -> str:
    """Why the action a moderator asked to undo is not the one undo would revert now."""
    wanted = ModeratorAction.objects.filter(run=run, pk=expected).exclude(kind=Kind.UNDO).first()
    if wanted is None:
        return "no such action to undo in this run"
    if wanted.undone_by_id is not None:
        return f"“{wanted.description}” is already undone; nothing else was undone"
    newer = f"“{last.description}”" if last is not None else "another action"
    return f"{newer} came after “{wanted.description}”; undo that first (nothing was undone)"


def _restore(run: ClusteringRun, action: ModeratorAction) -> None:
    """Put memberships, clusters and decisions back as the action's undo data recorded them."""
    data = action.undo_data
    groups: dict[tuple[Any, str], list[int]] = {}
    for photo_id, cluster_id, source in data.get("memberships", []):
        groups.setdefault((cluster_id, source), []).append(photo_id)
    for (cluster_id, source), photo_ids in groups.items():  # few groups: one cluster and source each
        for part in _chunks(photo_ids):
            Membership.objects.filter(run=run, photo_id__in=part).update(cluster_id=cluster_id, source=source)
    clusters = {row[0]: row for row in data.get("clusters", [])}
    found = list(Cluster.objects.filter(run=run, pk__in=list(clusters)))
    for cluster in found:
        _, cluster.name, cluster.state, cluster.merged_into_id = clusters[cluster.pk]
    Cluster.objects.bulk_update(found, ["name", "state", "merged_into"])
    ClusterDecision.objects.filter(action=action).delete()
    for part in _chunks(data.get("decisions_retired", [])):
        ClusterDecision.objects.filter(pk__in=part).update(active=True)
    created = data.get("created_clusters", [])
    Membership.objects.filter(run=run, cluster_id__in=created).update(cluster=None)
    Cluster.objects.filter(run=run, pk__in=created).delete()
