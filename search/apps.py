from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the job enqueuers (jobs.ENQUEUERS) in every process (web too), not only in workers.
        from search import tasks, tasks_clusters  # noqa: F401
