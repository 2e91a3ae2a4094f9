"""Training websockets through the real ASGI stack: who may watch, snapshots equal the DB, live pushes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from flatsite.jobs import services as jobs
from search.models import Job
from tests.factories import UserFactory
from tests.flatsite.jobs.sending import task_send_replace
from tests.flatsite.jobs.test_consumers import _headers, _open, _run
from training import artifacts, events, selectors, services
from training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _metric(step: int, fd: float | None = None) -> dict[str, Any]:
    return {
        "step": step, "resolution": 4, "alpha": 1.0, "loss_g": 1.0 / step, "loss_d": -0.5, "gp": 0.01,
        "loss_enc": 2.0, "images_per_s": 40.0, "fd_lite": fd,
    }  # fmt: skip


def _run_with_history(photo_dir: Path, steps: int = 30) -> TrainingRun:
    """A run part-way through: `steps` metric rows, two FD-Lite points, a sample grid, a checkpoint step."""
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), steps=100)
    assert run.job_id is not None
    jobs.job_claim(run.job_id)
    metrics = [_metric(s, fd=12.5 if s in (10, 20) else None) for s in range(1, steps + 1)]
    grid = artifacts.grid_png(np.full((4, 4, 4, 3), 128, dtype=np.uint8))
    live = {"resolution": 4, "alpha": 1.0, "phase": "stable", "images_per_s": 40.0, "last_fd_lite": 12.5}
    services.run_record(run.pk, run.job_id, services.Progress(steps, live, metrics, (steps, 4, 1.0, grid)))
    return TrainingRun.objects.select_related("job").get(pk=run.pk)


async def _watch(run: TrainingRun, headers: Any) -> tuple[Any, dict[str, Any]]:
    """An admin's socket on the run page, and the snapshot it gets first."""
    page, connected, _ = await _open(f"/ws/training/runs/{run.pk}/", headers)
    assert connected
    return page, await page.receive_json_from(timeout=5)


@pytest.fixture
def run(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TrainingRun:
    task_send_replace(monkeypatch, Job.Kind.TRAIN, lambda job_id: None)  # no worker trains it here
    return _run_with_history(photo_dir)


@pytest.mark.parametrize(("role", "code"), [(None, 4401), ("realtor", 4403), ("moderator", 4403)])
def test_anonymous_realtor_and_moderator_are_refused(run: TrainingRun, role: str | None, code: int) -> None:
    headers = _headers(UserFactory(role=role) if role else None)

    async def body() -> None:
        for path in (f"/ws/training/runs/{run.pk}/", "/ws/training/runs/"):
            communicator, connected, detail = await _open(path, headers)
            assert (connected, detail) == (False, code)
            await communicator.disconnect()

    _run(body)


def test_foreign_origin_is_refused_even_for_an_admin(run: TrainingRun) -> None:
    cookie = _headers(UserFactory(role="admin"))[1]

    async def body() -> None:
        for origin in (b"http://evil.example", b"null"):
            communicator, connected, _ = await _open(
                f"/ws/training/runs/{run.pk}/", [(b"origin", origin), cookie]
            )
            assert connected is False
            await communicator.disconnect()

    _run(body)


def test_admin_is_accepted_and_first_gets_the_whole_history_from_the_database(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))
    expected = events.run_snapshot(run)

    async def body() -> None:
        communicator, connected, _ = await _open(f"/ws/training/runs/{run.pk}/", headers)
        assert connected is True
        first = await communicator.receive_json_from(timeout=5)
        assert first == {"type": "snapshot", "run": expected}
        await communicator.disconnect()

    _run(body)
    assert expected["metrics"]["step"] == list(range(1, 31))
    assert expected["metrics"]["loss_g"] == pytest.approx([1.0 / s for s in range(1, 31)])
    assert expected["fd"] == {"step": [10, 20], "fd_lite": [12.5, 12.5], "resolution": [4, 4]}
    assert expected["latest_sample"]["url"] == f"/training/runs/{run.pk}/samples/30.png"
    assert (expected["step"], expected["total_steps"], expected["status"]) == (30, 100, "running")


def test_unknown_run_is_refused_for_an_admin(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))

    async def body() -> None:
        communicator, connected, detail = await _open("/ws/training/runs/987654/", headers)
        assert (connected, detail) == (False, 4404)
        await communicator.disconnect()

    _run(body)


def test_recorded_progress_reaches_run_and_list_watchers_live(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))
    assert run.job_id is not None
    job_id = run.job_id

    async def body() -> None:
        page, ok_page, _ = await _open(f"/ws/training/runs/{run.pk}/", headers)
        listing, ok_list, _ = await _open("/ws/training/runs/", headers)
        assert ok_page and ok_list
        await page.receive_json_from(timeout=5)
        progress = services.Progress(31, {"resolution": 8, "phase": "fade", "alpha": 0.25}, [_metric(31)])
        await sync_to_async(services.run_record)(run.pk, job_id, progress)
        pushed = await page.receive_json_from(timeout=5)
        assert (pushed["run"]["step"], pushed["run"]["resolution"], pushed["run"]["phase"]) == (31, 8, "fade")
        assert pushed["type"] == "update" and pushed["run"]["metrics_after"] == 30
        assert pushed["run"]["metrics"]["step"] == [31] and pushed["run"]["metric_count"] == 31
        row = await listing.receive_json_from(timeout=5)
        assert row["type"] == "row" and (row["run"]["id"], row["run"]["step"]) == (run.pk, 31)
        await page.disconnect()
        await listing.disconnect()

    _run(body)


def test_a_job_status_change_from_elsewhere_resyncs_the_page(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))
    assert run.job_id is not None
    job_id = run.job_id

    async def body() -> None:
        page, _ = await _watch(run, headers)
        # The reconciler gives up on the job (its worker died too often): no training code runs, yet the
        # run page learns it through the job's group.
        await sync_to_async(jobs.job_finish)(job_id, status=Job.Status.FAILED, error="worker died")
        message = await page.receive_json_from(timeout=5)
        assert (message["run"]["status"], message["run"]["job"]["error"]) == ("failed", "worker died")
        assert message["run"]["can_resume"] and not message["run"]["can_cancel"]
        await page.disconnect()

    _run(body)


def test_reconnecting_socket_gets_a_fresh_snapshot(run: TrainingRun, photo_dir: Path) -> None:
    headers = _headers(UserFactory(role="admin"))

    async def body() -> None:
        first, _, _ = await _open(f"/ws/training/runs/{run.pk}/", headers)
        before = await first.receive_json_from(timeout=5)
        await first.disconnect()
        progress = services.Progress(40, {}, [_metric(s) for s in range(31, 41)])
        assert run.job_id is not None
        await sync_to_async(services.run_record)(run.pk, run.job_id, progress)
        again, _, _ = await _open(f"/ws/training/runs/{run.pk}/", headers)
        after = await again.receive_json_from(timeout=5)
        assert len(before["run"]["metrics"]["step"]) == 30 and after["run"]["metrics"]["step"] == list(
            range(1, 41)
        )
        await again.disconnect()

    _run(body)


def test_a_second_update_does_not_repeat_the_rows_of_the_first(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))
    assert run.job_id is not None
    job_id = run.job_id

    async def body() -> None:
        page, first = await _watch(run, headers)
        assert first["type"] == "snapshot" and first["run"]["metrics_through"] == 30
        received = []
        for steps in ([31, 32], [33]):
            progress = services.Progress(steps[-1], {}, [_metric(s) for s in steps])
            await sync_to_async(services.run_record)(run.pk, job_id, progress)
            received.append(await page.receive_json_from(timeout=5))
        one, two = received
        assert (one["type"], one["run"]["metrics_after"], one["run"]["metrics"]["step"]) == (
            "update",
            30,
            [31, 32],
        )
        assert (two["type"], two["run"]["metrics_after"], two["run"]["metrics"]["step"]) == (
            "update",
            32,
            [33],
        )
        await page.disconnect()

    _run(body)


def test_a_page_that_asks_for_a_resync_gets_the_whole_history_again(run: TrainingRun) -> None:
    headers = _headers(UserFactory(role="admin"))

    async def body() -> None:
        page, _ = await _watch(run, headers)
        await page.send_json_to({"type": "resync"})
        again = await page.receive_json_from(timeout=5)
        assert again["type"] == "snapshot" and again["run"]["metrics"]["step"] == list(range(1, 31))
        await page.disconnect()

    _run(body)


def test_long_histories_are_thinned_but_keep_the_latest_step(run: TrainingRun) -> None:
    metrics = selectors.run_metrics(run, max_points=7)
    assert len(metrics["step"]) <= 8 and metrics["step"][0] == 1 and metrics["step"][-1] == 30
    assert metrics["step"] == sorted(set(metrics["step"]))
