"""Run a claimed training job: train (or resume) the GAN with recorded progress, or index with its encoder."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from django.conf import settings

from flatsite.jobs import runner as job_runner
from flatsite.jobs import services as jobs
from flatsite.jobs.models import Job
from search.ops import evaluation
from training import artifacts, selectors, services
from training.ml import StepStats, config_from_dict, train
from training.ml import fd_features as quality
from training.ml.state import pick_device
from training.models import TrainingRun

log = logging.getLogger(__name__)
METRIC_ROWS = 5000  # long runs record every k-th step so a run keeps at most about this many rows
FLUSH_S = 1.0  # progress is written (and pushed to pages) at most about once a second, plus on events

Echo = Callable[[str], None]


def _metric_row(st: StepStats) -> dict[str, Any]:
    keys = ("step", "resolution", "alpha", "loss_g", "loss_d", "gp", "loss_enc", "images_per_s", "fd_lite")
    return {k: getattr(st, k) for k in keys}


def describe(st: StepStats) -> str:
    """One progress line for the command line."""
    fade = f" fade alpha={st.alpha:.2f}" if st.phase == "fade" else ""
    fd = f" · FD-Lite {st.fd_lite:.2f}" if st.fd_lite is not None else ""
    return (
        f"step {st.step}/{st.total_steps} · {st.resolution}px{fade} · G {st.loss_g:.3f} D {st.loss_d:.3f} "
        f"GP {st.gp:.3f} E {st.loss_enc:.3f} · {st.images_per_s:.1f} img/s · ETA {st.eta_s:.0f} s{fd}"
    )


class Recorder:
    """The on_step callback: buffers metric rows and writes them with live values about once a second."""

    def __init__(self, run: TrainingRun, job_id: int, echo: Echo | None = None, flush_s: float = FLUSH_S):
        self.run_id, self.job_id, self.echo, self.flush_s = run.pk, job_id, echo, flush_s
        self.metric_every = max(1, run.total_steps // METRIC_ROWS)
        self.rows: list[dict[str, Any]] = []
        self.sample: tuple[int, int, float, bytes] | None = None
        self.checkpoint: Path | None = None
        self.last: StepStats | None = None
        self.fd_lite = run.last_fd_lite
        self.flushed_at = time.monotonic()

    def __call__(self, st: StepStats) -> None:
        if st.step % self.metric_every == 0 or st.fd_lite is not None or st.step == st.total_steps:
            self.rows.append(_metric_row(st))
        if st.samples is not None:
            self.sample = (st.step, st.resolution, st.alpha, artifacts.grid_png(st.samples))
        if st.checkpoint is not None:
            self.checkpoint = st.checkpoint
        if st.fd_lite is not None:
            self.fd_lite = st.fd_lite
        self.last = st
        eventful = st.samples is not None or st.checkpoint is not None or st.fd_lite is not None
        if eventful or time.monotonic() - self.flushed_at >= self.flush_s:
            self.flush()

    def flush(self, *, checkpoint: Path | None = None, step: int | None = None) -> None:
        """Write what is buffered (and a final checkpoint / step count)."""
        st = self.last
        if st is None and checkpoint is None:
            return
        live: dict[str, Any] = {"last_fd_lite": self.fd_lite}
        if st is not None:
            live.update(
                resolution=st.resolution, alpha=st.alpha, phase=st.phase, images_per_s=st.images_per_s
            )
            live["eta_s"] = st.eta_s
        done = step if step is not None else (st.step if st is not None else 0)
        progress = services.Progress(done, live, self.rows, self.sample, checkpoint or self.checkpoint)
        services.run_record(self.run_id, self.job_id, progress)
        if self.echo is not None and st is not None:
            self.echo(describe(st))
        self.rows, self.sample, self.checkpoint = [], None, None
        self.flushed_at = time.monotonic()


def loader_workers(requested: int) -> int:
    """DataLoader worker processes to use: none inside a daemonic process such as a Celery prefork child,
    which may not start children ("daemonic processes are not allowed to have children")."""
    if requested > 0 and multiprocessing.current_process().daemon:
        log.warning(
            "this worker process is daemonic (Celery prefork child), so it cannot start %d DataLoader "
            "workers; loading photos in the training process instead (num_workers=0)",
            requested,
        )
        return 0
    return requested


def worker_threads(device: torch.device, configured: int | None) -> int | None:
    """PyTorch threads for a worker: the configured count, else 1 for CPU runs (None: keep PyTorch's)."""
    if configured is not None:
        if configured < 1:
            raise ValueError(f"FLATSITE_TORCH_THREADS must be at least 1, got {configured}")
        return configured
    return 1 if device.type == "cpu" else None


def _limit_threads(device: str | None) -> None:
    threads = worker_threads(pick_device(device), settings.FLATSITE_TORCH_THREADS)
    if threads is not None and threads != torch.get_num_threads():
        log.info("using %d PyTorch threads in this worker", threads)
        torch.set_num_threads(threads)


def job_run(job_id: int, *, device: str | None = None, echo: Echo | None = None, worker: bool = False) -> Job:
    """Do what a claimed training-kind job asks: "train" (default) or "index"; worker=True in Celery."""
    if worker:
        _limit_threads(device)
    action = Job.objects.filter(pk=job_id).values_list("params__action", flat=True).first()
    if action == "index":
        return run_index(job_id, echo=echo)
    return run_train(job_id, device=device, echo=echo)


def run_train(job_id: int, *, device: str | None = None, echo: Echo | None = None) -> Job:
    """Train a run's GAN from its latest checkpoint (if any) until done or cancelled."""
    dev = pick_device(device)
    run, resume = services.run_begin(job_id, str(dev))
    if echo is not None:
        echo(f"run #{run.pk}: {'resuming from ' + str(resume) if resume else 'starting'} on {dev}")
    paths = selectors.data_paths(run.data)
    if len(paths) < services.MIN_PHOTOS:
        return services.run_end(
            job_id, status=Job.Status.FAILED, error=f"only {len(paths)} photos to train on"
        )
    cfg = config_from_dict(run.config)
    cfg = dataclasses.replace(cfg, num_workers=loader_workers(cfg.num_workers))
    recorder = Recorder(run, job_id, echo)

    def work(ctx: job_runner.JobContext) -> dict[str, Any]:
        try:
            fd = quality.fd_feature_fn(dev) if cfg.fd_every > 0 else None
            result = train(
                cfg, paths, artifacts.checkpoint_dir(run.pk), on_step=recorder, resume=resume, device=dev,
                should_stop=ctx.should_stop, fd_features=fd,
            )  # fmt: skip
        except Exception:
            _flush_quietly(recorder)
            raise
        recorder.flush(checkpoint=result.last_checkpoint, step=result.steps_done)
        return {
            "run_id": run.pk,
            "steps": result.steps_done,
            "checkpoint": str(result.last_checkpoint) if result.last_checkpoint else "",
            "fd_lite": result.last_fd_lite,
        }

    return job_runner.job_run(job_id, work, label="training", finish=services.run_end)


def _flush_quietly(recorder: Recorder) -> None:
    try:
        recorder.flush()
    except Exception:  # keep the original error as the job's error
        log.exception("could not record the last progress of job %s", recorder.job_id)


def run_index(job_id: int, *, echo: Echo | None = None) -> Job:
    """Register the run's encoder, extract features of every stored photo with it and index them."""
    from search.matching import features

    run = selectors.run_for_job(job_id)
    if run is None:
        return services.run_end(job_id, status=Job.Status.FAILED, error="the job belongs to no training run")

    def work(ctx: job_runner.JobContext) -> dict[str, Any]:
        name = services.run_register_encoder(run)
        ids = features.photos_missing(name)
        ctx.on_step(0, total=len(ids), message=f"extracting with {name}")
        if echo is not None:
            echo(f"run #{run.pk}: extracting {len(ids)} photos with {name}")
        done = features.features_extract(name, ids, on_step=ctx.on_step, should_stop=ctx.should_stop)
        if not ctx.should_stop():
            _evaluate_after_index(job_id, name, echo)
        return {"run_id": run.pk, "encoder": name, "extracted": done}

    return job_runner.job_run(job_id, work, label="indexing", finish=services.run_end)


def _evaluate_after_index(job_id: int, encoder: str, echo: Echo | None) -> None:
    """Queue the evaluation of the new index (and of the search encoder's, if never evaluated)."""
    user = Job.objects.select_related("created_by").get(pk=job_id).created_by
    for queued in evaluation.index_evaluate_after_build(encoder, user=user):
        if echo is not None:
            params = queued.params
            echo(f"evaluation job #{queued.pk} queued for {params['encoder']} v{params['version']}")


def job_run_inline(job_id: int, *, device: str | None = None, echo: Echo | None = None) -> Job:
    """Claim and run a training-kind job in this process (command line without a worker)."""
    if jobs.job_claim(job_id, worker="inline") is None:
        return Job.objects.get(pk=job_id)
    return job_run(job_id, device=device, echo=echo)
