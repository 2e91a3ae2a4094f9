"""Live progress of training runs: a full snapshot on (re)connect, then the run's state plus new metric rows.

The run's state (status, step, job, FD points, samples) is whole in every message, so any message resyncs it;
metric rows are sent once: each update carries the rows after the step the page already holds
(``metrics_after``), so a page appends them without gaps, and one that finds a gap asks for a snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from flatsite.jobs import events as job_events
from training import selectors
from training.models import TrainingRun

log = logging.getLogger(__name__)
RUNS_GROUP = "training-runs-all"
NO_METRICS = -1  # metrics_through of a run without metric rows (steps start at 0)


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


def run_state(run: TrainingRun) -> dict[str, Any]:
    """Everything the run page draws except the metric rows (whole in every message)."""
    samples = selectors.run_samples(run)
    return {
        **run_row(run),
        "job": job_events.job_snapshot(run.job) if run.job is not None else None,
        "metric_count": run.metrics.count(),
        "fd": selectors.run_fd_history(run),
        "samples": samples,
        "latest_sample": samples[-1] if samples else None,
    }


def run_snapshot(run: TrainingRun) -> dict[str, Any]:
    """The run's state and its (thinned) metric history: page load, (re)connect and the JSON view."""
    metrics = selectors.run_metrics(run)
    through = metrics["step"][-1] if metrics["step"] else NO_METRICS
    return {**run_state(run), "metrics": metrics, "metrics_through": through}


@dataclass(frozen=True)
class Cursor:
    """What one page holds: metric rows up to step `through`, `mark` rows of the run at or below it."""

    through: int = NO_METRICS
    mark: int = 0


def run_message(run: TrainingRun, cursor: Cursor | None) -> tuple[dict[str, Any], Cursor]:
    """The next message for a page at `cursor` (None: it holds nothing yet) and the page's new cursor.

    An update with only the newer rows, or a full snapshot when the page holds nothing, when rows it
    holds changed (a resumed run rewound its history) or when more rows are new than a snapshot shows.
    """
    if cursor is not None and selectors.metric_mark(run, cursor.through) == cursor.mark:
        rows = selectors.run_metrics_after(run, cursor.through, selectors.MAX_POINTS + 1)
        if len(rows["step"]) <= selectors.MAX_POINTS:
            through = rows["step"][-1] if rows["step"] else cursor.through
            body = {"metrics": rows, "metrics_after": cursor.through, "metrics_through": through}
            moved = Cursor(through, cursor.mark + len(rows["step"]))
            return {"type": "update", "run": {**run_state(run), **body}}, moved
    snapshot = run_snapshot(run)
    through = snapshot["metrics_through"]
    return {"type": "snapshot", "run": snapshot}, Cursor(through, selectors.metric_mark(run, through))


def run_changed(run_id: int) -> None:
    """Tell a run's watchers it changed (each reads what its page lacks) and send its row to the run list."""
    layer = get_channel_layer()
    run = selectors.run_get(run_id)
    if layer is None or run is None:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.changed", "run_id": run_id})
        async_to_sync(layer.group_send)(RUNS_GROUP, {"type": "run.row", "run": run_row(run)})
    except Exception:  # the channel layer may drop messages: the database stays the truth
        log.warning("could not publish progress of training run %s", run_id, exc_info=True)
