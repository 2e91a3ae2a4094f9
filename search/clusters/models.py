"""Clustering runs, their clusters and memberships, and the moderator actions and decisions on them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = ["Cluster", "ClusterDecision", "ClusteringRun", "Membership", "ModeratorAction"]


class ClusteringRun(models.Model):
    """One clustering of the collection (parameters, summary, saved model); one run per encoder is current."""

    class Status(models.TextChoices):
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"
        CANCELLED = "cancelled"

    encoder = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    is_current = models.BooleanField(default=False)
    params = models.JSONField(default=dict, blank=True, help_text="ClusterConfig as a dict")
    summary = models.JSONField(default=dict, blank=True)
    photo_count = models.PositiveIntegerField(default=0)
    cluster_count = models.PositiveIntegerField(default=0)
    noise_count = models.PositiveIntegerField(default=0)
    model_path = models.CharField(max_length=500, blank=True, default="", help_text="relative to DATA_DIR")
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_runs"
    )
    job = models.ForeignKey(
        "search.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="clustering_runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["encoder"], condition=Q(is_current=True), name="clustering_one_current_per_encoder"
            ),
            models.CheckConstraint(
                condition=Q(is_current=False) | Q(status="ready"), name="clustering_current_is_ready"
            ),
        ]

    def __str__(self) -> str:
        return f"clustering run #{self.pk} ({self.encoder}, {self.status})"

    @property
    def noise_share(self) -> float:
        """Share of the run's photos left as noise."""
        return self.noise_count / self.photo_count if self.photo_count else 0.0


class Cluster(models.Model):
    """A cluster of one run; `key` is its identity across runs (kept when carried over)."""

    class State(models.TextChoices):
        UNREVIEWED = "unreviewed"
        APPROVED = "approved"
        NOISE = "noise"  # dissolved by a moderator: its photos are noise
        MERGED = "merged"  # its photos moved into `merged_into`

    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="clusters")
    label = models.IntegerField(null=True, blank=True, help_text="model label; empty for split-off clusters")
    key = models.PositiveBigIntegerField(default=0, help_text="identity across runs")
    name = models.CharField(max_length=100, blank=True, default="")
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNREVIEWED)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    carried_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="carried_to"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "label", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "label"], condition=Q(label__isnull=False), name="cluster_label_unique_per_run"
            ),
        ]
        indexes = [models.Index(fields=["run", "key"]), models.Index(fields=["run", "state"])]

    def __str__(self) -> str:
        return f"cluster #{self.pk} {self.name or '(unnamed)'}"

    @property
    def display_name(self) -> str:
        """The name, or a placeholder naming its id."""
        return self.name or f"Cluster #{self.pk}"

    @property
    def is_active(self) -> bool:
        """Whether the cluster still holds photos (not dissolved or merged)."""
        return self.state in (self.State.UNREVIEWED, self.State.APPROVED)


class Membership(models.Model):
    """Where a run put one photo: a cluster (or noise), its confidence and its point on the 2-D map."""

    class Source(models.TextChoices):
        FIT = "fit"  # placed by the clustering run
        PROVISIONAL = "provisional"  # arrived after the run, placed into its clusters without a refit
        MODERATOR = "moderator"  # moved or marked by a moderator
        CONSTRAINT = "constraint"  # a moderator decision re-applied when the run was made

    #: Model-placed members below this probability are flagged as least confident.
    LOW_CONFIDENCE = 0.5
    DECIDED = (Source.MODERATOR, Source.CONSTRAINT)

    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="memberships")
    photo = models.ForeignKey("search.Photo", on_delete=models.CASCADE, related_name="cluster_memberships")
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.SET_NULL, related_name="memberships"
    )
    probability = models.FloatField(
        default=0.0, help_text="the model's confidence (kept when a moderator moves it)"
    )
    centrality = models.FloatField(default=0.0)
    outlier_score = models.FloatField(default=0.0)
    raw_noise = models.BooleanField(default=False, help_text="HDBSCAN called it noise; neighbours placed it")
    x = models.FloatField(default=0.0)
    y = models.FloatField(default=0.0)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FIT)

    class Meta:
        ordering = ["run", "photo"]
        constraints = [models.UniqueConstraint(fields=["run", "photo"], name="membership_one_per_run")]
        indexes = [
            models.Index(fields=["run", "cluster", "probability"]),
            models.Index(fields=["run", "cluster", "centrality"]),
            models.Index(fields=["cluster", "probability"]),
            models.Index(fields=["cluster", "centrality"]),
        ]

    def __str__(self) -> str:
        return f"photo #{self.photo_id} in {self.cluster_id or 'noise'} (run #{self.run_id})"

    @property
    def provisional(self) -> bool:
        """Placed after the run without a refit."""
        return self.source == self.Source.PROVISIONAL

    @property
    def decided(self) -> bool:
        """Placed by a moderator decision rather than by the model."""
        return self.source in self.DECIDED

    @property
    def is_low(self) -> bool:
        """A model placement of low confidence (flagged in galleries)."""
        return not self.decided and self.probability < self.LOW_CONFIDENCE


class ModeratorAction(models.Model):
    """One moderator edit of a run (who, when, what), with what undoing it needs."""

    class Kind(models.TextChoices):
        NAME = "name"
        APPROVE = "approve"
        MERGE = "merge"
        SPLIT = "split"
        MOVE = "move"
        NOISE_PHOTOS = "noise_photos"
        NOISE_CLUSTER = "noise_cluster"
        UNDO = "undo"

    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="actions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=500)
    payload = models.JSONField(default=dict, blank=True, help_text="what was done (ids, names)")
    undo_data = models.JSONField(default=dict, blank=True, help_text="the state before, for undo")
    undone_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undoes"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["run", "-id"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.user_id} on run #{self.run_id}"


class ClusterDecision(models.Model):
    """A per-photo moderator decision that re-clustering must respect (must-link / cannot-link to a key)."""

    class Kind(models.TextChoices):
        MUST_LINK = "must_link"  # the photo belongs with cluster `cluster_key`
        CANNOT_LINK = "cannot_link"  # the photo is not in cluster `cluster_key`

    photo = models.ForeignKey("search.Photo", on_delete=models.CASCADE, related_name="cluster_decisions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    cluster_key = models.PositiveBigIntegerField()
    active = models.BooleanField(default=True)
    action = models.ForeignKey(
        ModeratorAction, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["active", "photo"])]

    def __str__(self) -> str:
        return f"photo #{self.photo_id} {self.kind} {self.cluster_key}"
