"""Celery application: workers for ingestion, extraction, reindexing and training."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flatsite.settings")

app = Celery("flatsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def worker_priority(**_: Any) -> int:
    """Lower the worker's CPU priority by FLATSITE_WORKER_NICE; returns the niceness now in effect."""
    from django.conf import settings

    # Before the pool forks, so every pool child (and its decoder children) inherits it. Where web and
    # worker share cores, background ingestion then waits for a core instead of a realtor's search
    # (bench/README.md, "Load test"); the backlog drains when searches pause.
    return os.nice(settings.FLATSITE_WORKER_NICE)
