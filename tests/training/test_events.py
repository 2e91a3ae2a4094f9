"""Run page messages without a browser: a snapshot once, then updates with only the newer metric rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.models import Job
from tests.flatsite.jobs.sending import task_send_replace
from tests.training.test_consumers import _metric, _run_with_history
from training import events, selectors, services
from training.models import TrainingMetric, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TrainingRun:
    task_send_replace(monkeypatch, Job.Kind.TRAIN, lambda job_id: None)  # no worker trains it here
    return _run_with_history(photo_dir)


def _record(run: TrainingRun, steps: list[int]) -> TrainingRun:
    assert run.job_id is not None
    services.run_record(run.pk, run.job_id, services.Progress(steps[-1], {}, [_metric(s) for s in steps]))
    fresh = selectors.run_get(run.pk)
    assert fresh is not None
    return fresh


def test_a_page_without_a_cursor_gets_the_whole_history(run: TrainingRun) -> None:
    message, cursor = events.run_message(run, None)
    assert message["type"] == "snapshot" and message["run"]["metrics"]["step"] == list(range(1, 31))
    assert cursor == events.Cursor(through=30, mark=30) and message["run"]["metrics_through"] == 30


def test_updates_carry_only_the_rows_after_the_page_s_last_step_and_the_whole_state(run: TrainingRun) -> None:
    _, cursor = events.run_message(run, None)
    first, cursor = events.run_message(_record(run, [31, 32]), cursor)
    second, cursor = events.run_message(_record(run, [33]), cursor)
    assert first["type"] == second["type"] == "update"
    assert (first["run"]["metrics_after"], first["run"]["metrics"]["step"]) == (30, [31, 32])
    assert (second["run"]["metrics_after"], second["run"]["metrics"]["step"]) == (32, [33])
    assert second["run"]["metrics"]["loss_g"] == [pytest.approx(1 / 33)]
    assert (second["run"]["step"], second["run"]["metric_count"], second["run"]["fd"]["step"]) == (
        33,
        33,
        [10, 20],
    )
    assert cursor == events.Cursor(through=33, mark=33)


def test_an_update_with_no_new_rows_keeps_the_state_whole(run: TrainingRun) -> None:
    _, cursor = events.run_message(run, None)
    message, after = events.run_message(run, cursor)
    assert message["type"] == "update" and message["run"]["metrics"]["step"] == [] and after == cursor
    assert message["run"]["status"] == run.status and message["run"]["samples"]


def test_a_rewound_history_sends_a_snapshot_again(run: TrainingRun) -> None:
    _, cursor = events.run_message(run, None)
    TrainingMetric.objects.filter(run=run, step__gt=10).delete()  # what a resume from step 10 does
    message, cursor = events.run_message(_record(run, [11]), cursor)
    assert message["type"] == "snapshot" and message["run"]["metrics"]["step"] == list(range(1, 12))
    assert cursor == events.Cursor(through=11, mark=11)


def test_a_page_far_behind_gets_a_snapshot_instead_of_every_row(
    run: TrainingRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cursor = events.run_message(run, None)
    monkeypatch.setattr(selectors, "MAX_POINTS", 5)
    message, _ = events.run_message(_record(run, list(range(31, 41))), cursor)
    assert message["type"] == "snapshot" and message["run"]["metrics"]["step"] == list(range(1, 41))


def test_with_500_rows_an_update_is_a_small_fraction_of_a_snapshot(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_send_replace(monkeypatch, Job.Kind.TRAIN, lambda job_id: None)
    run = _run_with_history(photo_dir, steps=500)
    snapshot, cursor = events.run_message(run, None)
    update, _ = events.run_message(_record(run, [501]), cursor)
    full, delta = len(json.dumps(snapshot)), len(json.dumps(update))
    assert len(snapshot["run"]["metrics"]["step"]) == 500 and update["run"]["metrics"]["step"] == [501]
    print(f"training run page message with 500 metric rows: snapshot {full} B, update {delta} B")
    assert delta * 10 < full, (delta, full)
