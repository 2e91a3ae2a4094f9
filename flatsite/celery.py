"""Celery application: workers for ingestion, extraction, reindexing and training."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flatsite.settings")

app = Celery("flatsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
