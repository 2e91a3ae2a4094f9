"""Read-only queries of clustering runs, clusters, memberships, moderator history and room-type tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
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
    return reverse("search-photo-file", args=[_ID_PLACEHOLDER, variant]).replace(str(_ID_PLACEHOLDER), "{id}")


def photo_page_template() -> str:
    """URL of the cluster photo page with '{id}' in place of the photo id."""
    return reverse("clusters-photo", args=[_ID_PLACEHOLDER]).replace(str(_ID_PLACEHOLDER), "{id}")


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
