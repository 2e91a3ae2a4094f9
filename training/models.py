"""Training runs of the GAN encoder: the run, its metric history and its sample grids."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from flatsite.jobs.models import Job


class TrainingRun(models.Model):
    """One GAN + encoder run; its status, heartbeat and cancel flag live on its current Job row."""

    name = models.CharField(max_length=100, blank=True, default="")
    preset = models.CharField(max_length=32, help_text="training.ml preset the config started from")
    config = models.JSONField(help_text="training.ml GanConfig as a dict (config_to_dict)")
    data = models.JSONField(default=dict, help_text="the data choice: stored photos or a folder")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs",
        help_text="the job of the latest start or resume",
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_runs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Latest live values, so list pages need no metric query.
    step = models.PositiveIntegerField(default=0, help_text="steps completed")
    total_steps = models.PositiveIntegerField(default=0)
    resolution = models.PositiveSmallIntegerField(default=0)
    alpha = models.FloatField(default=1.0)
    phase = models.CharField(max_length=8, blank=True, default="")
    images_per_s = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    last_fd_lite = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=32, blank=True, default="")
    checkpoint_path = models.CharField(
        max_length=500, blank=True, default="", help_text="under CHECKPOINT_ROOT"
    )
    checkpoint_step = models.PositiveIntegerField(default=0)
    encoder_name = models.CharField(
        max_length=64, blank=True, default="", help_text="registry name once used"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(step__lte=models.F("total_steps")), name="run_step_not_above_total"
            ),
            models.CheckConstraint(
                condition=Q(checkpoint_step__lte=models.F("step")), name="run_checkpoint_not_ahead"
            ),
        ]

    def __str__(self) -> str:
        return f"training run #{self.pk} ({self.preset})"

    @property
    def status(self) -> str:
        """The current job's status ("queued" before any job exists)."""
        return self.job.status if self.job is not None else Job.Status.QUEUED

    @property
    def is_active(self) -> bool:
        """Whether a job of this run is queued or running."""
        return self.job is not None and not self.job.is_final

    @property
    def percent(self) -> int:
        """Progress in whole percent."""
        return min(100, int(100 * self.step / self.total_steps)) if self.total_steps else 0


class TrainingMetric(models.Model):
    """Losses and throughput at one step (every step, or every k-th on long runs, plus FD-Lite steps)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    resolution = models.PositiveSmallIntegerField()
    alpha = models.FloatField()
    loss_g = models.FloatField()
    loss_d = models.FloatField()
    gp = models.FloatField()
    loss_enc = models.FloatField()
    images_per_s = models.FloatField()
    fd_lite = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="metric_one_per_step")]

    def __str__(self) -> str:
        return f"run #{self.run_id} step {self.step}"


class TrainingSample(models.Model):
    """A sample grid PNG (fixed latents through the EMA generator) under MEDIA_ROOT."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    resolution = models.PositiveSmallIntegerField()
    alpha = models.FloatField(default=1.0)
    path = models.CharField(max_length=500, help_text="relative to MEDIA_ROOT")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="sample_one_per_step")]

    def __str__(self) -> str:
        return f"samples of run #{self.run_id} at step {self.step}"
