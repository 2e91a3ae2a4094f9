from django.apps import AppConfig


def _gan_encoder(name: str) -> bool:
    """Register a `gan-run-<id>-step-<n>` encoder from its pinned weights (imports torch only when asked)."""
    from training import services

    return services.encoder_ensure_registered(name)


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the training task in every process (web too): flatsite.jobs.routes sends it by name.
        from search.ops import evaluation
        from training import tasks  # noqa: F401

        # Lets any worker build a run's GAN encoder by name (evaluation jobs run in other processes).
        if _gan_encoder not in evaluation.ENCODER_RESOLVERS:
            evaluation.ENCODER_RESOLVERS.append(_gan_encoder)
