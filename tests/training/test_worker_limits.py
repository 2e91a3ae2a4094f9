"""Training inside a Celery worker: no DataLoader processes in a daemonic child, a sane thread count, and
an evaluation queued after indexing with a run's encoder."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch

from flatsite.jobs import services as jobs
from search.ml.encoders.registry import unregister_encoder
from search.models import IndexVersion, Job
from search.ops import evaluation as index_evaluation
from tests.flatsite.jobs.sending import task_send_replace
from training import job as runner
from training import services
from training.ml import GanConfig

pytestmark = pytest.mark.django_db


def _report_workers(queue: Any) -> None:
    queue.put(runner.loader_workers(4))


def test_a_daemonic_process_gets_no_dataloader_workers() -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_report_workers, args=(queue,), daemon=True)  # what a prefork child is
    child.start()
    assert queue.get(timeout=30) == 0
    child.join(timeout=30)
    assert runner.loader_workers(4) == 4 and runner.loader_workers(0) == 0  # pytest's own process


def test_worker_threads_default_to_one_for_cpu_runs_unless_configured() -> None:
    assert runner.worker_threads(torch.device("cpu"), None) == 1
    assert runner.worker_threads(torch.device("cuda"), None) is None
    assert runner.worker_threads(torch.device("cpu"), 3) == 3
    with pytest.raises(ValueError, match="at least 1"):
        runner.worker_threads(torch.device("cpu"), 0)


def test_a_run_in_a_daemonic_worker_trains_without_loader_processes_on_one_thread(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = services.data_choice_folder(photo_dir)
    run = services.run_start(
        preset="tiny-test", data=data, enqueue=False, steps=4, options={"num_workers": 2}
    )
    assert run.config["num_workers"] == 2 and run.job_id is not None
    seen: list[GanConfig] = []
    real_train = runner.train
    monkeypatch.setattr(runner, "train", lambda cfg, *a, **kw: seen.append(cfg) or real_train(cfg, *a, **kw))
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)  # as in a Celery prefork child
    settings.FLATSITE_TORCH_THREADS = None
    torch.set_num_threads(2)  # the conftest fixture restores the count afterwards
    jobs.job_claim(run.job_id)
    with caplog.at_level(logging.WARNING, logger="training.job"):
        job = runner.job_run(run.job_id, device="cpu", worker=True)
    assert job.status == Job.Status.SUCCEEDED and seen[0].num_workers == 0
    assert torch.get_num_threads() == 1 and "num_workers=0" in caplog.text


def test_indexing_with_a_runs_encoder_queues_its_evaluation(
    photo_dir: Path,
    stored_photos: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.EVALUATE, queued.append)
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    job = services.run_index_start(run.pk, enqueue=False)
    lines: list[str] = []
    with django_capture_on_commit_callbacks(execute=True):
        assert runner.job_run_inline(job.pk, echo=lines.append).status == Job.Status.SUCCEEDED
    name = f"gan-run-{run.pk}-step-15"
    evaluation = Job.objects.get(kind=Job.Kind.EVALUATE)
    assert queued == [evaluation.pk] and evaluation.params["encoder"] == name
    assert any(f"evaluation job #{evaluation.pk} queued for {name}" in line for line in lines)
    unregister_encoder(name)  # another worker process: the training app's resolver registers it again
    assert jobs.job_claim(evaluation.pk) is not None
    assert index_evaluation.job_evaluate_run(evaluation.pk).status == Job.Status.SUCCEEDED
    stored = IndexVersion.objects.get(encoder=name, version=evaluation.params["version"]).evaluation
    assert stored["sample_size"] == 4 and stored["room"]["skipped"]  # 4 photos: too few for room measures
    unregister_encoder(name)
