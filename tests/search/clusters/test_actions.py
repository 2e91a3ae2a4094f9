"""Moderator actions: name, approve, merge, split, move, noise; each recorded, each undoable."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from search.clusters import actions
from search.models import Cluster, ClusterDecision, ClusteringRun, Membership, ModeratorAction
from tests.search.clusters.fixtures import blob_photos, run_inline

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(listing: Any) -> dict[str, Any]:
    blobs = blob_photos(listing, (20, 18, 16), seed=11)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    ids = []
    for blob in blobs:
        ids.append(Membership.objects.get(run=run, photo=blob[0]).cluster_id)
    return {"run": run, "blobs": blobs, "clusters": [Cluster.objects.get(pk=i) for i in ids]}


def _state(run: ClusteringRun) -> tuple[Any, ...]:
    """Everything an undo must restore."""
    members = sorted(run.memberships.values_list("photo_id", "cluster_id", "probability", "source"))
    clusters = sorted(Cluster.objects.filter(run=run).values_list("id", "name", "state", "merged_into_id"))
    decisions = sorted(
        ClusterDecision.objects.filter(active=True).values_list("photo_id", "kind", "cluster_key")
    )
    return members, clusters, decisions


def test_naming_a_cluster_is_recorded_with_who_and_what(world: dict[str, Any], moderator: Any) -> None:
    cluster = world["clusters"][0]
    action = actions.cluster_name(cluster.pk, "  Kitchen   with island ", user=moderator)
    cluster.refresh_from_db()
    assert cluster.name == "Kitchen with island"
    assert (action.kind, action.user, action.run) == (ModeratorAction.Kind.NAME, moderator, world["run"])
    assert "Kitchen with island" in action.description and action.created_at is not None


def test_approve_and_withdraw(world: dict[str, Any], moderator: Any) -> None:
    cluster = world["clusters"][1]
    actions.cluster_approve(cluster.pk, user=moderator)
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.APPROVED
    actions.cluster_approve(cluster.pk, user=moderator, approved=False)
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.UNREVIEWED


def test_merge_moves_all_photos_and_undo_restores_them(world: dict[str, Any], moderator: Any) -> None:
    run, (a, b, _c) = world["run"], world["clusters"]
    before = _state(run)
    n_b = Membership.objects.filter(run=run, cluster=b).count()
    n_a = Membership.objects.filter(run=run, cluster=a).count()
    action = actions.clusters_merge(a.pk, [b.pk], user=moderator)
    assert Membership.objects.filter(run=run, cluster=a).count() == n_a + n_b
    b.refresh_from_db()
    assert (b.state, b.merged_into_id) == (Cluster.State.MERGED, a.pk)
    assert action.payload["photos"] == n_b
    actions.action_undo_last(run.pk, user=moderator)
    assert _state(run) == before


def test_split_creates_a_cluster_with_must_links_and_undo_removes_it(
    world: dict[str, Any], moderator: Any
) -> None:
    run, blob = world["run"], world["blobs"][0]
    picked = [p.pk for p in blob[:5]]
    before = _state(run)
    action = actions.photos_split(run.pk, picked, user=moderator, name="Pantry")
    new = Cluster.objects.get(pk=action.payload["cluster"])
    assert (new.name, new.key, new.label) == ("Pantry", new.pk, None)
    assert set(Membership.objects.filter(run=run, cluster=new).values_list("photo_id", flat=True)) == set(
        picked
    )
    must = ClusterDecision.objects.filter(active=True, kind="must_link", cluster_key=new.key)
    assert set(must.values_list("photo_id", flat=True)) == set(picked)
    assert set(must.values_list("action", flat=True)) == {action.pk}
    actions.action_undo_last(run.pk, user=moderator)
    assert _state(run) == before
    assert not Cluster.objects.filter(pk=new.pk).exists()


def test_move_records_must_and_cannot_links(world: dict[str, Any], moderator: Any) -> None:
    run, (a, b, _) = world["run"], world["clusters"]
    photo = world["blobs"][0][3]
    actions.photos_move(run.pk, [photo.pk], b.pk, user=moderator)
    member = Membership.objects.get(run=run, photo=photo)
    assert (member.cluster_id, member.source, member.decided, member.is_low) == (
        b.pk,
        "moderator",
        True,
        False,
    )
    active = set(ClusterDecision.objects.filter(active=True, photo=photo).values_list("kind", "cluster_key"))
    assert active == {("must_link", b.key), ("cannot_link", a.key)}
    # Moving it back lifts "not in a" and replaces the move into b.
    actions.photos_move(run.pk, [photo.pk], a.pk, user=moderator)
    active = set(ClusterDecision.objects.filter(active=True, photo=photo).values_list("kind", "cluster_key"))
    assert active == {("must_link", a.key), ("cannot_link", b.key)}
    actions.action_undo_last(run.pk, user=moderator)
    active = set(ClusterDecision.objects.filter(active=True, photo=photo).values_list("kind", "cluster_key"))
    assert active == {("must_link", b.key), ("cannot_link", a.key)}


def test_marking_photos_and_a_cluster_as_noise(world: dict[str, Any], moderator: Any) -> None:
    run, (a, _b, c) = world["run"], world["clusters"]
    photo = world["blobs"][0][0]
    actions.photos_mark_noise(run.pk, [photo.pk], user=moderator)
    assert Membership.objects.get(run=run, photo=photo).cluster_id is None
    assert ClusterDecision.objects.filter(
        active=True, photo=photo, kind="cannot_link", cluster_key=a.key
    ).exists()
    members = list(Membership.objects.filter(run=run, cluster=c).values_list("photo_id", flat=True))
    actions.cluster_mark_noise(c.pk, user=moderator)
    c.refresh_from_db()
    assert c.state == Cluster.State.NOISE
    assert not Membership.objects.filter(run=run, photo_id__in=members).exclude(cluster=None).exists()
    with pytest.raises(ValidationError, match="cannot be edited"):
        actions.cluster_name(c.pk, "Garden", user=moderator)


def test_undo_goes_back_one_action_at_a_time_and_is_recorded(world: dict[str, Any], moderator: Any) -> None:
    run, (a, b, _) = world["run"], world["clusters"]
    start = _state(run)
    actions.cluster_name(a.pk, "Kitchen", user=moderator)
    after_name = _state(run)
    actions.photos_move(run.pk, [world["blobs"][0][1].pk], b.pk, user=moderator)
    first = actions.action_undo_last(run.pk, user=moderator)
    assert _state(run) == after_name and first.description.startswith("Undid: Moved 1 photo")
    actions.action_undo_last(run.pk, user=moderator)
    assert _state(run) == start
    with pytest.raises(ValidationError, match="nothing left to undo"):
        actions.action_undo_last(run.pk, user=moderator)
    kinds = list(run.actions.order_by("id").values_list("kind", flat=True))
    assert kinds == ["name", "move", "undo", "undo"]
    assert all(a.undone_by_id for a in run.actions.exclude(kind="undo"))


def test_older_runs_are_read_only(world: dict[str, Any], moderator: Any) -> None:
    old = world["run"]
    run_inline()
    with pytest.raises(ValidationError, match="read-only"):
        actions.cluster_name(world["clusters"][0].pk, "Kitchen", user=moderator)
    with pytest.raises(ValidationError, match="read-only"):
        actions.photos_mark_noise(old.pk, [world["blobs"][0][0].pk], user=moderator)


def test_empty_selection_and_foreign_clusters_are_refused(world: dict[str, Any], moderator: Any) -> None:
    run, (a, b, _) = world["run"], world["clusters"]
    with pytest.raises(ValidationError, match="select at least one"):
        actions.photos_move(run.pk, [], b.pk, user=moderator)
    with pytest.raises(ValidationError, match="at least one other"):
        actions.clusters_merge(a.pk, [a.pk], user=moderator)
    with pytest.raises(ValidationError, match="no such cluster"):
        actions.cluster_name(999_999, "x", user=moderator)
    with pytest.raises(ValidationError, match="at most"):
        actions.cluster_name(a.pk, "x" * 101, user=moderator)


def test_three_undos_walk_back_three_actions_to_the_original_state(
    world: dict[str, Any], moderator: Any
) -> None:
    run, (a, b, c) = world["run"], world["clusters"]
    states = [_state(run)]
    actions.clusters_merge(a.pk, [b.pk], user=moderator)
    states.append(_state(run))
    from_b = [p.pk for p in world["blobs"][1][:4]] + [world["blobs"][0][0].pk]
    actions.photos_split(run.pk, from_b, user=moderator, name="Nook")
    states.append(_state(run))
    actions.cluster_mark_noise(c.pk, user=moderator)
    for expected in reversed(states):
        actions.action_undo_last(run.pk, user=moderator)
        assert _state(run) == expected
    with pytest.raises(ValidationError, match="nothing left to undo"):
        actions.action_undo_last(run.pk, user=moderator)


def test_undo_refuses_an_action_that_is_no_longer_the_newest_and_changes_nothing(
    world: dict[str, Any], moderator: Any
) -> None:
    run, (a, b, _) = world["run"], world["clusters"]
    named = actions.cluster_name(a.pk, "Kitchen", user=moderator)
    moved = actions.photos_move(run.pk, [world["blobs"][0][1].pk], b.pk, user=moderator)
    state = _state(run)
    with pytest.raises(ValidationError, match="came after “Named"):
        actions.action_undo_last(run.pk, user=moderator, expected=named.pk)
    assert _state(run) == state
    actions.action_undo_last(run.pk, user=moderator, expected=moved.pk)
    state = _state(run)
    with pytest.raises(ValidationError, match="already undone"):  # the same button clicked twice
        actions.action_undo_last(run.pk, user=moderator, expected=moved.pk)
    assert _state(run) == state and run.actions.filter(kind="undo").count() == 1
    with pytest.raises(ValidationError, match="no such action"):
        actions.action_undo_last(run.pk, user=moderator, expected=999_999)
    actions.action_undo_last(run.pk, user=moderator, expected=named.pk)
    a.refresh_from_db()
    assert a.name == ""
