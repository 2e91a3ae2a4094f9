"""Read side of clustering: room-type tags from named clusters, cluster rows, map data, CLI assignments."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from search import selectors_clusters as sel
from search.models import ClusteringRun, Membership, Photo
from search.services import cluster_actions as actions
from tests.search.cluster_fixtures import SMALL_PARAMS, blob_photos, run_inline

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(listing: Any) -> dict[str, Any]:
    blobs = blob_photos(listing, (20, 16), seed=31)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    found = [Membership.objects.get(run=run, photo=blob[0]).cluster for blob in blobs]
    return {"run": run, "blobs": blobs, "clusters": found}


def test_a_named_cluster_becomes_the_room_tag_of_its_photos(world: dict[str, Any], moderator: Any) -> None:
    kitchen, _other = world["clusters"]
    actions.cluster_name(kitchen.pk, "Kitchen", user=moderator)
    photos = [p.pk for blob in world["blobs"] for p in blob]
    tags = sel.photo_room_tags(photos)
    kitchen_photos = set(
        Membership.objects.filter(run=world["run"], cluster=kitchen).values_list("photo_id", flat=True)
    )
    assert set(tags) == kitchen_photos and set(tags.values()) == {"kitchen"}
    assert sel.room_tags() == {"kitchen": len(kitchen_photos)}
    assert set(sel.photo_ids_with_room_tag("KITCHEN")) == kitchen_photos
    assert list(sel.photo_ids_with_room_tag("garden")) == []


def test_copies_carry_the_tag_of_the_photo_holding_their_pixels(
    world: dict[str, Any], moderator: Any
) -> None:
    kitchen = world["clusters"][0]
    actions.cluster_name(kitchen.pk, "Kitchen", user=moderator)
    original = world["blobs"][0][3]
    copy = Photo.objects.create(
        listing=original.listing,
        uploader=original.uploader,
        original_name="copy.jpg",
        sha256_bytes="c" * 64,
        status=Photo.Status.DUPLICATE,
        duplicate_of=original,
        image_path=original.image_path,
    )
    assert sel.photo_room_tags([copy.pk]) == {copy.pk: "kitchen"}
    assert copy.pk in set(sel.photo_ids_with_room_tag("kitchen"))


def test_dissolved_clusters_and_removed_names_tag_nothing(world: dict[str, Any], moderator: Any) -> None:
    kitchen, other = world["clusters"]
    actions.cluster_name(kitchen.pk, "Kitchen", user=moderator)
    actions.cluster_name(kitchen.pk, "", user=moderator)
    actions.cluster_name(other.pk, "Garden", user=moderator)
    actions.cluster_mark_noise(other.pk, user=moderator)
    assert sel.photo_room_tags([p.pk for blob in world["blobs"] for p in blob]) == {}


def test_no_run_means_no_tags(db: Any) -> None:
    assert sel.photo_room_tags([1, 2]) == {} and sel.room_tags() == {}
    assert list(sel.photo_ids_with_room_tag("kitchen")) == []


def test_cluster_rows_give_sizes_and_most_central_members(world: dict[str, Any]) -> None:
    rows = sel.cluster_rows(world["run"])
    assert [r.size for r in rows] == sorted((r.size for r in rows), reverse=True)
    for row in rows:
        assert len(row.representatives) == sel.REPRESENTATIVES
        central = list(
            Membership.objects.filter(cluster=row.cluster)
            .order_by("-centrality", "photo_id")
            .values_list("photo_id", flat=True)[: sel.REPRESENTATIVES]
        )
        assert row.representatives == central
        assert 0.0 <= row.noise_share <= 1.0


def test_map_data_has_one_point_per_photo(world: dict[str, Any]) -> None:
    data = sel.map_data(world["run"])
    points = data["points"]
    assert len(points["photo"]) == len(points["x"]) == len(points["cluster"]) == 36
    assert set(points["cluster"]) <= {c["id"] for c in data["clusters"]} | {-1}
    assert "{id}" in data["thumb_url"] and "{id}" in data["photo_url"]


def test_cluster_command_inline_json_prints_params_summary_and_assignments(listing: Any) -> None:
    blob_photos(listing, (18, 18), seed=41)
    out, err = StringIO(), StringIO()
    args = ["--inline", "--json", "--min-cluster-size", "5"]
    for key, value in SMALL_PARAMS.items():
        if key != "min_cluster_size":
            args += ["--param", f"{key}={json.dumps(value)}"]
    call_command("cluster", *args, stdout=out, stderr=err)
    data = json.loads(out.getvalue())  # stdout holds the JSON object alone
    run = ClusteringRun.objects.get(pk=data["run"])
    assert data["params"]["min_cluster_size"] == 5 and data["params"]["pca_dim"] == SMALL_PARAMS["pca_dim"]
    assert data["summary"]["clusters"] == 2 == run.cluster_count
    assignments = data["assignments"]
    assert len(assignments) == 36
    assert set(assignments[0]) == {"photo_id", "original_name", "cluster_id", "probability"}
    cluster_ids = set(run.clusters.values_list("pk", flat=True)) | {-1}
    assert {a["cluster_id"] for a in assignments} <= cluster_ids
    assert assignments[0]["original_name"].startswith("blob")


def test_cluster_command_plain_output_and_bad_params(listing: Any) -> None:
    blob_photos(listing, (18, 18), seed=42)
    out = StringIO()
    call_command(
        "cluster",
        "--inline",
        "--param",
        f"pca_dim={SMALL_PARAMS['pca_dim']}",
        "--min-cluster-size",
        "5",
        stdout=out,
    )
    assert "2 clusters" in out.getvalue()
    with pytest.raises(CommandError, match="unknown clustering parameters"):
        call_command("cluster", "--inline", "--param", "nope=1", stdout=StringIO())
    with pytest.raises(CommandError, match="KEY=VALUE"):
        call_command("cluster", "--inline", "--param", "nope", stdout=StringIO())
