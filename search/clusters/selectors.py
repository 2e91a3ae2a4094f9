"""Read-only queries of clustering runs, clusters, memberships, moderator history and room-type tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.urls import reverse

from search.models import Cluster, ClusteringRun, Job, Membership, ModeratorAction, Photo

LOW_CONFIDENCE = Membership.LOW_CONFIDENCE
#: Model placements below LOW_CONFIDENCE: the least confident members, flagged in galleries.
LOW_Q = Q(probability__lt=LOW_CONFIDENCE) & ~Q(source__in=Membership.DECIDED)
REPRESENTATIVES = 6
GALLERY_PAGE_SIZE = 120
GALLERY_ORDERS = {
    "central": ("-centrality", "photo_id"),
    "confidence": ("probability", "photo_id"),
    "photo": ("photo_id",),
}
ACTIVE_STATES = (Cluster.State.UNREVIEWED, Cluster.State.APPROVED)
_ID_PLACEHOLDER = 987654321


@dataclass
class ClusterRow:
    """One line of the cluster list."""

    cluster: Cluster
    size: int
    fringe: int
    low: int
    provisional: int
    representatives: list[int] = field(default_factory=list)

    @property
    def noise_share(self) -> float:
        """Share of members HDBSCAN called noise before the neighbour vote placed them here."""
        return self.fringe / self.size if self.size else 0.0


def room_tag(name: str) -> str:
    """The room-type tag a cluster name stands for (whitespace collapsed, lower case)."""
    return " ".join(name.split()).lower()


def current_run(encoder: str | None = None) -> ClusteringRun | None:
    """The current run of an encoder (default: the clustering encoder)."""
    encoder = encoder or settings.FLATSITE_CLUSTER_ENCODER
    return ClusteringRun.objects.filter(encoder=encoder, is_current=True).first()


def run_get(run_id: int) -> ClusteringRun | None:
    """A run by id."""
    return ClusteringRun.objects.select_related("job", "created_by", "previous").filter(pk=run_id).first()


def runs_list(limit: int = 200) -> QuerySet[ClusteringRun]:
    """Runs, newest first."""
    return ClusteringRun.objects.select_related("job", "created_by")[:limit]


def clustering_job_active(encoder: str | None = None) -> Job | None:
    """The clustering job of an encoder that is queued or running, if any."""
    encoder = encoder or settings.FLATSITE_CLUSTER_ENCODER
    return (
        Job.objects.filter(kind=Job.Kind.CLUSTER, params__encoder=encoder)
        .exclude(status__in=Job.FINAL_STATES)
        .order_by("-id")
        .first()
    )


def cluster_rows(run: ClusteringRun) -> list[ClusterRow]:
    """Active clusters of a run, largest first, with counts and their most central members (3 queries)."""
    qs = (
        Cluster.objects.filter(run=run, state__in=ACTIVE_STATES)
        .annotate(
            size=Count("memberships"),
            fringe=Count("memberships", filter=Q(memberships__raw_noise=True)),
            low=Count(
                "memberships",
                filter=Q(memberships__probability__lt=LOW_CONFIDENCE)
                & ~Q(memberships__source__in=Membership.DECIDED),
            ),
            provisional=Count("memberships", filter=Q(memberships__source=Membership.Source.PROVISIONAL)),
        )
        .order_by("-size", "id")
    )
    rows = [ClusterRow(c, c.size, c.fringe, c.low, c.provisional) for c in qs]
    reps = representatives(run, [r.cluster.pk for r in rows])
    for row in rows:
        row.representatives = reps.get(row.cluster.pk, [])
    return rows


def representatives(
    run: ClusteringRun, cluster_ids: list[int], n: int = REPRESENTATIVES
) -> dict[int, list[int]]:
    """Photo ids of the n most central members of each cluster, in one windowed query."""
    ranked = (
        Membership.objects.filter(run=run, cluster_id__in=cluster_ids)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("cluster_id")], order_by=[F("centrality").desc(), F("photo_id")]
            )
        )
        .filter(rank__lte=n)
        .order_by("cluster_id", "rank")
        .values_list("cluster_id", "photo_id")
    )
    found: dict[int, list[int]] = {}
    for cluster_id, photo_id in ranked:
        found.setdefault(cluster_id, []).append(photo_id)
    return found


def noise_count(run: ClusteringRun) -> int:
    """Photos of the run currently in no cluster."""
    return Membership.objects.filter(run=run, cluster__isnull=True).count()


def cluster_get(cluster_id: int) -> Cluster | None:
    """A cluster with its run."""
    return Cluster.objects.select_related("run", "merged_into", "carried_from").filter(pk=cluster_id).first()


def members_page(
    run: ClusteringRun, cluster: Cluster | None, page: int | str | None, order: str = "central"
) -> Page[Membership]:
    """One page of a cluster's members (None: the run's noise), thumbnails only, in two queries."""
    ordering = GALLERY_ORDERS.get(order, GALLERY_ORDERS["central"])
    qs = (
        Membership.objects.filter(run=run, cluster=cluster)
        .select_related("photo")
        .only(
            "id",
            "photo_id",
            "cluster_id",
            "probability",
            "centrality",
            "raw_noise",
            "source",
            "photo__original_name",
            "photo__listing_id",
        )
        .order_by(*ordering)
    )
    return Paginator(qs, GALLERY_PAGE_SIZE).get_page(page)


def low_confidence_count(run: ClusteringRun, cluster: Cluster | None) -> int:
    """Members of a cluster below LOW_CONFIDENCE."""
    return Membership.objects.filter(LOW_Q, run=run, cluster=cluster).count()


def move_targets(run: ClusteringRun) -> list[tuple[int, str, int]]:
    """(id, display name, size) of clusters photos may be moved into, largest first."""
    qs = (
        Cluster.objects.filter(run=run, state__in=ACTIVE_STATES)
        .annotate(size=Count("memberships"))
        .order_by("-size", "id")
    )
    return [(c.pk, c.display_name, c.size) for c in qs]


def photo_url_template(variant: str) -> str:
    """URL of a photo file with '{id}' in place of the photo id (for client-side drawing)."""
    return reverse("listings:photo-file", args=[_ID_PLACEHOLDER, variant]).replace(
        str(_ID_PLACEHOLDER), "{id}"
    )


def photo_page_template() -> str:
    """URL of the cluster photo page with '{id}' in place of the photo id."""
    return reverse("clusters:photo", args=[_ID_PLACEHOLDER]).replace(str(_ID_PLACEHOLDER), "{id}")


def map_data(run: ClusteringRun) -> dict[str, Any]:
    """The run's 2-D map as column arrays (one query for points, one for clusters)."""
    clusters = [
        {"id": c.pk, "name": c.display_name, "named": bool(c.name), "state": c.state}
        for c in Cluster.objects.filter(run=run, state__in=ACTIVE_STATES).order_by("id")
    ]
    rows = Membership.objects.filter(run=run).order_by("photo_id")
    rows_list = list(rows.values_list("photo_id", "x", "y", "cluster_id", "probability", "source"))
    return {
        "run": run.pk,
        "clusters": clusters,
        "points": {
            "photo": [r[0] for r in rows_list],
            "x": [round(r[1], 4) for r in rows_list],
            "y": [round(r[2], 4) for r in rows_list],
            "cluster": [r[3] if r[3] is not None else -1 for r in rows_list],
            "p": [round(r[4], 3) for r in rows_list],
            "provisional": [int(r[5] == Membership.Source.PROVISIONAL) for r in rows_list],
        },
        "thumb_url": photo_url_template("thumb"),
        "photo_url": photo_page_template(),
    }


def run_history(run: ClusteringRun, limit: int = 500) -> QuerySet[ModeratorAction]:
    """Moderator actions of a run, newest first."""
    return run.actions.select_related("user", "undone_by", "undone_by__user")[:limit]


def last_undoable(run: ClusteringRun) -> ModeratorAction | None:
    """The most recent action of the run that can still be undone."""
    return (
        run.actions.exclude(kind=ModeratorAction.Kind.UNDO)
        .filter(undone_by__isnull=True)
        .order_by("-id")
        .select_related("user")
        .first()
    )


def photo_count(n: int) -> str:
    """'1 photo' or 'n photos'."""
    return f"{n} photo" if n == 1 else f"{n} photos"


@dataclass
class Consequences:
    """What a destructive action would do, in sentences, and the photos it would touch (for thumbnails)."""

    lines: list[str]
    photo_ids: list[int] = field(default_factory=list)


def _editable_run(run_id: int) -> ClusteringRun:
    """The run, refused as the actions refuse it unless it is the current one."""
    run = ClusteringRun.objects.filter(pk=run_id).first()
    if run is None or not run.is_current:
        raise ValidationError("only the current clustering run can be edited; older runs are read-only")
    return run


def _active_cluster(cluster_id: int, run: ClusteringRun | None = None) -> Cluster:
    cluster = Cluster.objects.select_related("run").filter(pk=cluster_id).first()
    if cluster is None or (run is not None and cluster.run_id != run.pk):
        raise ValidationError("no such cluster in this run")
    _editable_run(cluster.run_id)
    if cluster.state not in ACTIVE_STATES:
        raise ValidationError(
            f"{cluster.display_name} was {cluster.get_state_display()}; it cannot be edited"
        )
    return cluster


def _label(cluster: Cluster) -> str:
    """A cluster as a confirmation page names it: “Kitchen”, or Cluster #7 when unnamed."""
    return f"“{cluster.name}”" if cluster.name else cluster.display_name


def _described(cluster: Cluster, size: int) -> str:
    """Cluster “Kitchen” (37 photos, approved)."""
    name = f"Cluster “{cluster.name}”" if cluster.name else cluster.display_name
    return f"{name} ({photo_count(size)}, {cluster.get_state_display().lower()})"


def _size(cluster: Cluster) -> int:
    return Membership.objects.filter(run_id=cluster.run_id, cluster=cluster).count()


def merge_consequences(target_id: int, source_ids: list[int]) -> Consequences:
    """What merging the source clusters into the target would do."""
    wanted = sorted(set(source_ids) - {target_id})
    if not wanted:
        raise ValidationError("choose at least one other cluster to merge into this one")
    target = _active_cluster(target_id)
    sources = [_active_cluster(cid, target.run) for cid in wanted]
    sizes = [_size(source) for source in sources]
    into, before = _described(target, _size(target)), _size(target)
    lines = [
        f"{_described(s, n)} is merged into {into}: its photos move there and it leaves the list"
        for s, n in zip(sources, sizes, strict=True)
    ]
    lines.append(f"{_label(target)} then holds {photo_count(before + sum(sizes))}")
    return Consequences(lines)


def cluster_noise_consequences(cluster_id: int) -> Consequences:
    """What marking a whole cluster as noise would do."""
    cluster = _active_cluster(cluster_id)
    ids = list(
        Membership.objects.filter(run_id=cluster.run_id, cluster=cluster)
        .order_by("-centrality", "photo_id")
        .values_list("photo_id", flat=True)
    )
    lines = [
        f"{_described(cluster, len(ids))} becomes noise and leaves the list",
        f"Its {photo_count(len(ids))} are kept out of it when re-clustering",
    ]
    if cluster.name:
        lines.append(f"“{cluster.name}” stops being the room-type tag of these photos")
    return Consequences(lines, ids)


def _selection(run: ClusteringRun, photo_ids: list[int]) -> tuple[list[int], dict[int | None, int]]:
    """The selected photos the run holds, and how many of them each cluster (None: noise) holds."""
    if not photo_ids:
        raise ValidationError("select at least one photo")
    wanted = sorted(set(photo_ids))
    rows = Membership.objects.filter(run=run).values_list("photo_id", "cluster_id")
    found: list[int] = []
    counts: dict[int | None, int] = {}
    for start in range(0, len(wanted), 5000):  # SQLite's limit on one parameter list
        for photo_id, cluster_id in rows.filter(photo_id__in=wanted[start : start + 5000]):
            found.append(photo_id)
            counts[cluster_id] = counts.get(cluster_id, 0) + 1
    if not found:
        raise ValidationError("none of the selected photos is in this run")
    return found, counts


def _leaving(counts: dict[int | None, int]) -> str:
    """“Hall” (7 of 7, approved), Cluster #4 (5 of 20, unreviewed): where the selected photos come from."""
    clusters = Cluster.objects.filter(pk__in=[c for c in counts if c is not None])
    sizes = dict(
        Membership.objects.filter(cluster__in=clusters)
        .values_list("cluster_id")
        .annotate(n=Count("id"))
        .values_list("cluster_id", "n")
    )
    parts = []
    for cluster in sorted(clusters, key=lambda c: (-counts[c.pk], c.pk)):
        state = cluster.get_state_display().lower()
        parts.append(f"{_label(cluster)} ({counts[cluster.pk]} of {sizes.get(cluster.pk, 0)}, {state})")
    return ", ".join(parts)


def _selection_lines(run: ClusteringRun, photo_ids: list[int]) -> tuple[list[int], list[str], int]:
    """Selected photos found, sentences on where they leave, and how many are already noise."""
    found, counts = _selection(run, photo_ids)
    lines = []
    clustered = len(found) - counts.get(None, 0)
    if clustered:
        verb = "leaves" if clustered == 1 else "leave"
        sources = len(counts) - (None in counts)
        where = f"{sources} clusters: " if sources > 1 else ""
        lines.append(f"{photo_count(clustered)} {verb} {where}{_leaving(counts)}")
    missing = len(set(photo_ids)) - len(found)
    if missing:
        ids = "1 selected id is not a photo" if missing == 1 else f"{missing} selected ids are not photos"
        lines.append(f"{ids} of this run; left alone")
    return found, lines, counts.get(None, 0)


def split_consequences(run_id: int, photo_ids: list[int], name: str) -> Consequences:
    """What splitting the selected photos off into a new cluster would do."""
    name = " ".join(name.split())
    limit = Cluster._meta.get_field("name").max_length
    if limit is not None and len(name) > limit:
        raise ValidationError(f"a cluster name has at most {limit} characters")
    run = _editable_run(run_id)
    found, lines, noise = _selection_lines(run, photo_ids)
    if noise:
        lines.append(f"{photo_count(noise)} from noise {'joins' if noise == 1 else 'join'} them")
    new = f"A new cluster “{name}”" if name else "A new unnamed cluster"
    lines.append(f"{new} holds these {photo_count(len(found))}; they stay together when re-clustering")
    return Consequences(lines, found)


def photos_noise_consequences(run_id: int, photo_ids: list[int]) -> Consequences:
    """What marking the selected photos as noise would do."""
    run = _editable_run(run_id)
    found, lines, noise = _selection_lines(run, photo_ids)
    if noise == len(found):
        raise ValidationError("the selected photos are already noise")
    lines.append("They become noise and are kept out of those clusters when re-clustering")
    if noise:
        lines.append(f"{photo_count(noise)} already in noise {'stays' if noise == 1 else 'stay'} there")
    return Consequences(lines, found)


def photo_get(photo_id: int) -> Photo | None:
    """A photo with its listing."""
    return Photo.objects.select_related("listing").filter(pk=photo_id).first()


def photo_membership(run: ClusteringRun, photo_id: int) -> Membership | None:
    """Where a run put a photo (None: not in the run)."""
    return Membership.objects.select_related("cluster").filter(run=run, photo_id=photo_id).first()


def run_assignments(run: ClusteringRun) -> list[dict[str, Any]]:
    """Every photo of a run: id, original file name, cluster id (-1: noise) and probability."""
    rows = (
        Membership.objects.filter(run=run)
        .order_by("photo_id")
        .values_list("photo_id", "photo__original_name", "cluster_id", "probability", "source")
    )
    # A moderator's decision is certain: 1 in its cluster, 0 as noise.
    return [
        {
            "photo_id": p,
            "original_name": name,
            "cluster_id": c if c is not None else -1,
            "probability": (1.0 if c is not None else 0.0) if source in Membership.DECIDED else prob,
        }
        for p, name, c, prob, source in rows
    ]


def photo_room_tags(photo_ids: list[int]) -> dict[int, str]:
    """Room-type tag of each photo from its moderator-named cluster in the current run (copies included)."""
    run = current_run()
    if run is None or not photo_ids:
        return {}
    stored = dict(
        Photo.objects.filter(pk__in=photo_ids).values_list("pk", "duplicate_of_id")
    )  # a copy is tagged like the photo that holds its pixels
    lookup = {pid: dup or pid for pid, dup in stored.items()}
    rows = (
        Membership.objects.filter(
            run=run, photo_id__in=set(lookup.values()), cluster__state__in=ACTIVE_STATES
        )
        .exclude(cluster__name="")
        .values_list("photo_id", "cluster__name")
    )
    names = {pid: room_tag(name) for pid, name in rows}
    return {pid: names[target] for pid, target in lookup.items() if target in names}


def room_tags() -> dict[str, int]:
    """Room-type tags of the current run with how many photos carry each."""
    run = current_run()
    if run is None:
        return {}
    rows = (
        Membership.objects.filter(run=run, cluster__state__in=ACTIVE_STATES)
        .exclude(cluster__name="")
        .values_list("cluster__name")
        .annotate(n=Count("id"))
    )
    tags: dict[str, int] = {}
    for name, n in rows:
        tags[room_tag(name)] = tags.get(room_tag(name), 0) + n
    return dict(sorted(tags.items()))


def photo_ids_with_room_tag(tag: str) -> QuerySet[Photo, int]:
    """Ids of photos (copies included) carrying a room-type tag, as a subquery for `pk__in`."""
    run = current_run()
    if run is None:
        return Photo.objects.none().values_list("pk", flat=True)
    members = Membership.objects.filter(
        run=run, cluster__state__in=ACTIVE_STATES, cluster__name__iexact=" ".join(tag.split())
    ).values("photo_id")
    return Photo.objects.filter(Q(pk__in=members) | Q(duplicate_of__in=members)).values_list("pk", flat=True)
