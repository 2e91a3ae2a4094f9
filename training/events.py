"""Live progress of training runs: full snapshots (history included) pushed to the channel layer."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from flatsite.jobs import events as job_events
from training import selectors
from training.models import TrainingRun

log = logging.getLogger(__name__)
RUNS_GROUP = "training-runs-all"


def run_group(run_id: int) -> str:
    """Channel group of one run."""
    return f"training-run-{run_id}"


def run_row(run: TrainingRun) -> dict[str, Any]:
    """The live fields of a run (list pages; also the head of the full snapshot)."""
    return {
        "id": run.pk,
        "name": run.name,
        "preset": run.preset,
        "status": run.status,
        "is_active": run.is_active,
        "step": run.step,
        "total_steps": run.total_steps,
        "percent": run.percent,
        "resolution": run.resolution,
        "alpha": run.alpha,
        "phase": run.phase,
        "images_per_s": run.images_per_s,
        "eta_s": run.eta_s,
        "fd_lite": run.last_fd_lite,
        "device": run.device,
        "checkpoint_step": run.checkpoint_step,
        "checkpoint_path": run.checkpoint_path,
        "encoder_name": run.encoder_name,
        "can_cancel": run.is_active,
        "can_resume": not run.is_active,
    }


def run_snapshot(run: TrainingRun) -> dict[str, Any]:
    """Everything the run page draws, whole history included, so any one message resyncs a page."""
    samples = selectors.run_samples(run)
    return {
        **run_row(run),
        "job": job_events.job_snapshot(run.job) if run.job is not None else None,
        "metrics": selectors.run_metrics(run),
        "metric_count": run.metrics.count(),
        "fd": selectors.run_fd_history(run),
        "samples": samples,
        "latest_sample": samples[-1] if samples else None,
    }


def run_changed(run_id: int) -> None:
    """Send a run's snapshot to its watchers and its row to the run list (best effort)."""
    layer = get_channel_layer()
    run = selectors.run_get(run_id)
    if layer is None or run is None:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.snapshot", "run": run_snapshot(run)})
        async_to_sync(layer.group_send)(RUNS_GROUP, {"type": "run.row", "run": run_row(run)})
    except Exception:  # the channel layer may drop messages: the database stays the truth
        log.warning("could not publish progress of training run %s", run_id, exc_info=True)
