"""Decisions survive re-clustering: names and states by member overlap, moves and noise as constraints."""

from __future__ import annotations

from typing import Any

import pytest

from search.clusters import actions
from search.models import Cluster, ClusteringRun, Membership
from tests.search.clusters.fixtures import (
    blob_centres,
    blob_photos,
    blob_vectors,
    photos_with_features,
    run_inline,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(listing: Any) -> dict[str, Any]:
    blobs = blob_photos(listing, (22, 20, 18), seed=21)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    found = [Membership.objects.get(run=run, photo=blob[0]).cluster for blob in blobs]
    return {"run": run, "blobs": blobs, "clusters": found, "listing": listing}


def _rerun() -> ClusteringRun:
    return ClusteringRun.objects.get(pk=run_inline().result["run"])


def _where(run: ClusteringRun, photo: Any) -> Membership:
    return Membership.objects.select_related("cluster").get(run=run, photo=photo)


def test_names_and_approval_carry_over_to_the_matching_new_cluster(
    world: dict[str, Any], moderator: Any
) -> None:
    a, b, _c = world["clusters"]
    actions.cluster_name(a.pk, "Kitchen", user=moderator)
    actions.cluster_approve(a.pk, user=moderator)
    actions.cluster_name(b.pk, "Bathroom", user=moderator)
    new = _rerun()
    for blob, name, state in (
        (0, "Kitchen", "approved"),
        (1, "Bathroom", "unreviewed"),
        (2, "", "unreviewed"),
    ):
        cluster = _where(new, world["blobs"][blob][5]).cluster
        assert cluster is not None and cluster.run_id == new.pk
        assert (cluster.name, cluster.state) == (name, state)
    kitchen = Cluster.objects.get(run=new, name="Kitchen")
    assert kitchen.key == a.key and kitchen.carried_from_id == a.pk
    summary = new.summary
    assert summary["previous_run"] == world["run"].pk and summary["carried"] == 2
    assert {c["name"] for c in summary["carried_clusters"]} == {"Kitchen", "Bathroom"}
    assert summary["conflict_count"] == 0


def test_a_moved_photo_stays_moved_after_reclustering(world: dict[str, Any], moderator: Any) -> None:
    _a, b, _ = world["clusters"]
    photo = world["blobs"][0][2]
    actions.photos_move(
        world["run"].pk, [photo.pk], b.pk, user=moderator
    )  # b unnamed: the move alone keeps it
    new = _rerun()
    member = _where(new, photo)
    assert member.cluster is not None and member.cluster.key == b.key
    assert member.source == Membership.Source.CONSTRAINT and member.decided
    assert new.summary["moves_applied"] == 1
    assert Membership.objects.filter(run=new, cluster=member.cluster).count() == 21


def test_a_photo_marked_noise_stays_out_of_its_cluster(world: dict[str, Any], moderator: Any) -> None:
    photo = world["blobs"][1][4]
    actions.cluster_name(world["clusters"][1].pk, "Bedroom", user=moderator)
    actions.photos_mark_noise(world["run"].pk, [photo.pk], user=moderator)
    new = _rerun()
    assert _where(new, photo).cluster is None
    assert new.summary["cannot_links_applied"] == 1


def test_decisions_keep_holding_over_several_runs(world: dict[str, Any], moderator: Any) -> None:
    a, b, _ = world["clusters"]
    photo = world["blobs"][0][7]
    actions.cluster_name(a.pk, "Kitchen", user=moderator)
    actions.photos_move(world["run"].pk, [photo.pk], b.pk, user=moderator)
    _rerun()
    third = _rerun()
    assert Cluster.objects.filter(run=third, name="Kitchen").count() == 1
    member = _where(third, photo)
    assert member.cluster is not None and member.cluster.key == b.key


def test_an_undone_move_does_not_carry_over(world: dict[str, Any], moderator: Any) -> None:
    _a, b, _ = world["clusters"]
    photo = world["blobs"][0][2]
    actions.photos_move(world["run"].pk, [photo.pk], b.pk, user=moderator)
    actions.action_undo_last(world["run"].pk, user=moderator)
    new = _rerun()
    member = _where(new, photo)
    assert member.cluster is not None and member.cluster.key != b.key and member.source == "fit"


def test_undone_name_split_and_noise_do_not_carry_over(world: dict[str, Any], moderator: Any) -> None:
    run, (a, _b, _c) = world["run"], world["clusters"]
    actions.cluster_name(a.pk, "Kitchen", user=moderator)
    actions.photos_split(run.pk, [p.pk for p in world["blobs"][1][:6]], user=moderator, name="Nook")
    actions.photos_mark_noise(run.pk, [world["blobs"][0][3].pk], user=moderator)
    for _ in range(3):
        actions.action_undo_last(run.pk, user=moderator)
    new = _rerun()
    assert not Cluster.objects.filter(run=new).exclude(name="").exists()
    assert new.summary["carried"] == 0 and new.summary["moves_applied"] == 0
    assert new.summary["cannot_links_applied"] == 0
    assert not Membership.objects.filter(run=new, source__in=Membership.DECIDED).exists()
    assert _where(new, world["blobs"][0][3]).cluster is not None


def test_merged_named_clusters_that_split_again_are_reported_as_a_conflict(
    world: dict[str, Any], moderator: Any
) -> None:
    a, b, _ = world["clusters"]
    actions.cluster_name(a.pk, "Living room", user=moderator)
    actions.clusters_merge(a.pk, [b.pk], user=moderator)
    new = _rerun()
    conflicts = new.summary["conflicts"]
    assert new.summary["conflict_count"] >= 1
    split = [c for c in conflicts if c["type"] == "split"]
    assert split and "“Living room” split over" in split[0]["text"]
    assert Cluster.objects.filter(run=new, name="Living room").count() == 1


def test_a_named_cluster_whose_photos_are_gone_is_reported_lost(
    world: dict[str, Any], moderator: Any
) -> None:
    c = world["clusters"][2]
    actions.cluster_name(c.pk, "Garage", user=moderator)
    for photo in world["blobs"][2]:
        photo.features.all().delete()
    photos_with_features(world["listing"], blob_vectors(blob_centres(1, 77)[0], 15, seed=78), prefix="other")
    new = _rerun()
    lost = [x for x in new.summary["conflicts"] if x["type"] == "lost"]
    assert lost and "“Garage” has no match" in lost[0]["text"]
    assert not Cluster.objects.filter(run=new, name="Garage").exists()
