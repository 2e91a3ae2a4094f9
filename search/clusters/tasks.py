"""Celery tasks of clustering: thin doors that claim a job row (or take photo ids) and call one service."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings

from flatsite.jobs import services as jobs
from search.clusters import assign as cluster_assign
from search.clusters import runs as clusters

log = logging.getLogger(__name__)


@shared_task(
    name="search.tasks_clusters.clustering_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def clustering_run(job_id: int) -> None:
    """Fit a clustering run (idempotent: a redelivery finds nothing to claim)."""
    if jobs.job_claim(job_id) is None:
        return
    clusters.job_cluster_run(job_id)


@worker_process_init.connect
def _warm_up_clustering(**_: Any) -> None:
    """Optionally compile the clustering kernels in the background, so the first placement is fast."""
    if not settings.FLATSITE_CLUSTER_WARMUP:
        return

    def run() -> None:
        try:
            cluster_assign.warm_up()
        except Exception:  # warming up is an optimisation only
            log.warning("clustering warm-up failed", exc_info=True)

    threading.Thread(target=run, name="clustering-warm-up", daemon=True).start()
