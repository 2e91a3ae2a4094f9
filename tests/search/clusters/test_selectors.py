"""Read side of clustering: room-type tags from named clusters, cluster rows, map data, CLI assignments."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from search.clusters import actions
from search.clusters import selectors as sel
from search.models import ClusteringRun, Membership, Photo
from tests.search.clusters.fixtures import SMALL_PARAMS, blob_photos, run_inline

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


def test_selection_consequences_count_the_photos_each_cluster_loses(
    world: dict[str, Any], moderator: Any
) -> None:
    run, (a, b) = world["run"], world["clusters"]
    actions.cluster_name(a.pk, "Kitchen", user=moderator)
    actions.cluster_approve(a.pk, user=moderator)
    noise = world["blobs"][1][0].pk
    actions.photos_mark_noise(run.pk, [noise], user=moderator)
    size = {c.pk: Membership.objects.filter(cluster=c).count() for c in (a, b)}
    picked = [p.pk for p in world["blobs"][0][:4]] + [p.pk for p in world["blobs"][1][1:3]]
    split = sel.split_consequences(run.pk, [*picked, noise, 999_999], "  Reading   nook ")
    assert split.lines == [
        f"6 photos leave 2 clusters: “Kitchen” (4 of {size[a.pk]}, approved), "
        f"Cluster #{b.pk} (2 of {size[b.pk]}, unreviewed)",
        "1 selected id is not a photo of this run; left alone",
        "1 photo from noise joins them",
        "A new cluster “Reading nook” holds these 7 photos; they stay together when re-clustering",
    ]
    assert sorted(split.photo_ids) == sorted([*picked, noise])
    marked = sel.photos_noise_consequences(run.pk, [picked[0], noise])
    assert marked.lines == [
        f"1 photo leaves “Kitchen” (1 of {size[a.pk]}, approved)",
        "They become noise and are kept out of those clusters when re-clustering",
        "1 photo already in noise stays there",
    ]

    assert sorted(marked.photo_ids) == sorted([picked[0], noise])


def test_merge_and_cluster_noise_consequences_name_sizes_and_states(
    world: dict[str, Any], moderator: Any
) -> None:
    a, b = world["clusters"]
    actions.cluster_name(b.pk, "Hall", user=moderator)
    n_a, n_b = (Membership.objects.filter(cluster=c).count() for c in (a, b))
    merge = sel.merge_consequences(a.pk, [b.pk, a.pk])
    assert merge.lines == [
        f"Cluster “Hall” ({n_b} photos, unreviewed) is merged into Cluster #{a.pk} ({n_a} photos, "
        "unreviewed): its photos move there and it leaves the list",
        f"Cluster #{a.pk} then holds {n_a + n_b} photos",
    ]
    noise = sel.cluster_noise_consequences(b.pk)
    assert noise.lines == [
        f"Cluster “Hall” ({n_b} photos, unreviewed) becomes noise and leaves the list",
        f"Its {n_b} photos are kept out of it when re-clustering",
        "“Hall” stops being the room-type tag of these photos",
    ]
    assert len(noise.photo_ids) == n_b


def test_consequences_refuse_what_the_action_would_refuse(world: dict[str, Any], moderator: Any) -> None:
    run, (a, b) = world["run"], world["clusters"]
    with pytest.raises(ValidationError, match="select at least one photo"):
        sel.split_consequences(run.pk, [], "")
    with pytest.raises(ValidationError, match="at most 100 characters"):
        sel.split_consequences(run.pk, [world["blobs"][0][0].pk], "x" * 101)
    with pytest.raises(ValidationError, match="none of the selected photos"):
        sel.photos_noise_consequences(run.pk, [999_999])
    with pytest.raises(ValidationError, match="at least one other"):
        sel.merge_consequences(a.pk, [a.pk])
    actions.cluster_mark_noise(b.pk, user=moderator)
    with pytest.raises(ValidationError, match="cannot be edited"):
        sel.merge_consequences(a.pk, [b.pk])
    with pytest.raises(ValidationError, match="already noise"):
        sel.photos_noise_consequences(run.pk, [world["blobs"][1][0].pk])
    run_inline()
    with pytest.raises(ValidationError, match="read-only"):
        sel.cluster_noise_consequences(a.pk)
