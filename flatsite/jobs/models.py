"""The job row: one long operation's state, progress, lease and result (kinds are plain strings)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Job(models.Model):
    """A long operation (ingest, extract, reindex, cluster, train, evaluate) and its live progress."""

    class Kind(models.TextChoices):
        INGEST = "ingest"
        EXTRACT = "extract"
        REINDEX = "reindex"
        CLUSTER = "cluster"
        TRAIN = "train"
        EVALUATE = "evaluate"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL_STATES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # Claims since the job last moved forward; the reconciler gives up at FLATSITE_JOB_MAX_ATTEMPTS,
    # so a job killed many times while it keeps progressing is never abandoned.
    stalled_attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the task was last put on the queue: the reconciler re-sends a queued job at most once per
    # heartbeat timeout instead of flooding the queue while it waits behind other work.
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # In the search app: its migrations created the table (search_job), and FKs name search.Job.
        app_label = "search"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="job_done_not_above_total"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        """Whether the job has reached a final state."""
        return self.status in self.FINAL_STATES

    @property
    def percent(self) -> int:
        """Progress in whole percent (100 for a finished job with no items)."""
        if self.total == 0:
            return 100 if self.is_final else 0
        return min(100, int(100 * self.done / self.total))
