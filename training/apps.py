from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the training enqueuer in every process (web too), not only in Celery workers.
        from training import tasks  # noqa: F401
