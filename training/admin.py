"""Django admin registrations of training runs (read-mostly; pages under /training/ do the work)."""

from django.contrib import admin

from training.models import TrainingMetric, TrainingRun, TrainingSample


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "name",
        "preset",
        "job",
        "step",
        "total_steps",
        "resolution",
        "last_fd_lite",
        "created_at",
    )
    list_filter = ("preset",)
    readonly_fields = ("config", "data", "job", "checkpoint_path", "checkpoint_step", "encoder_name")


@admin.register(TrainingMetric)
class TrainingMetricAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "step", "resolution", "alpha", "loss_g", "loss_d", "gp", "loss_enc", "fd_lite")
    list_filter = ("run",)


@admin.register(TrainingSample)
class TrainingSampleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("run", "step", "resolution", "path", "created_at")
    list_filter = ("run",)
