"""The declared route table: which Celery task runs each job kind, and on which queue.

Task names are the stable ones queued messages carry; the task modules register them with Celery when
their apps are ready (search.apps, training.apps), so this table never imports domain code.
"""

from __future__ import annotations

from django.conf import settings

TASKS: dict[str, str] = {
    "ingest": "search.tasks.photos_process",
    "extract": "search.tasks.features_extract",
    "reindex": "search.tasks.index_rebuild",
    "cluster": "search.tasks_clusters.clustering_run",
    "evaluate": "search.tasks_ops.index_evaluate",
    "train": "training.tasks.training_job_run",
}

#: Kinds that embed images or train: a GPU worker's jobs when one listens on "gpu".
GPU_KINDS = frozenset({"extract", "evaluate", "train"})


def job_queue(kind: str) -> str | None:
    """A kind's queue: GPU kinds go to "gpu" when a GPU worker exists, else "default"; None: the default."""
    if kind in GPU_KINDS:
        return "gpu" if settings.FLATSITE_GPU_QUEUE else "default"
    return None
