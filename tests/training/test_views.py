"""Training pages: admins only; start, watch, cancel, resume, index, sample grids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from search.models import Job
from tests.factories import UserFactory
from tests.flatsite.jobs.sending import task_send_replace
from training import artifacts, services
from training import job as runner
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _run(photo_dir: Path) -> TrainingRun:
    return services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)


@pytest.mark.parametrize("role", ["realtor", "moderator"])
def test_non_admins_get_403_on_every_training_page(role: str, photo_dir: Path) -> None:
    run = _run(photo_dir)
    client = Client()
    client.force_login(UserFactory(role=role))
    gets = ["training:runs", ("training:run", run.pk), ("training:run-snapshot", run.pk)]
    posts = [("training:run-cancel", run.pk), ("training:run-resume", run.pk), ("training:run-index", run.pk)]
    for name in gets:
        url = reverse(name[0], args=[name[1]]) if isinstance(name, tuple) else reverse(name)
        assert client.get(url).status_code == 403, url
    for name, pk in posts:
        assert client.post(reverse(name, args=[pk])).status_code == 403, name
    assert client.post(reverse("training:run-create"), {"preset": "cpu-smoke"}).status_code == 403
    assert TrainingRun.objects.count() == 1 and Job.objects.filter(cancel_requested=True).count() == 0


def test_anonymous_is_sent_to_the_login_page(photo_dir: Path) -> None:
    response = Client().get(reverse("training:runs"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_list_page_offers_the_two_presets_and_the_nav_link(admin: Client, stored_photos: Any) -> None:
    page = admin.get(reverse("training:runs")).content.decode()
    assert 'value="cpu-smoke"' in page and "CPU smoke" in page
    assert 'value="gpu-128"' in page and "GPU 128px" in page
    assert "tiny-test" not in page
    assert f'href="{reverse("training:runs")}">Training</a>' in page
    assert "only kitchen photos" in page


def test_admin_starts_a_run_on_stored_photos(
    admin: Client, stored_photos: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    form = {"preset": "cpu-smoke", "steps": "40", "room": "kitchen", "name": "k"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("training:run-create"), form)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:run", args=[run.pk])
    assert (run.preset, run.total_steps, run.name, run.data["room"], run.data["count"]) == (
        "cpu-smoke", 40, "k", "kitchen", 3,
    )  # fmt: skip
    assert run.config["sample_every"] == 10 and run.config["fd_every"] == 100
    assert sent == [run.job_id]


def test_starting_without_photos_shows_why(admin: Client) -> None:
    response = admin.post(reverse("training:run-create"), {"preset": "cpu-smoke"})
    assert response.status_code == 400 and "at least 2 processed photos" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_run_page_embeds_the_snapshot_and_live_socket(admin: Client, photo_dir: Path) -> None:
    run = _run(photo_dir)
    page = admin.get(reverse("training:run", args=[run.pk])).content.decode()
    assert f'data-ws-path="/ws/training/runs/{run.pk}/"' in page
    assert "vendor/echarts/echarts.min.js" in page and "js/training.js" in page
    start = page.index('<script id="run-snapshot" type="application/json">') + len(
        '<script id="run-snapshot" type="application/json">'
    )
    snapshot = json.loads(page[start : page.index("</script>", start)])
    assert snapshot == admin.get(reverse("training:run-snapshot", args=[run.pk])).json()
    assert (snapshot["id"], snapshot["status"], snapshot["can_cancel"]) == (run.pk, "queued", True)


def test_cancel_resume_and_index_buttons(
    admin: Client, photo_dir: Path, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    run = _run(photo_dir)
    response = admin.post(reverse("training:run-index", args=[run.pk]), follow=True)
    assert "no checkpoint yet" in response.content.decode()
    admin.post(reverse("training:run-cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == Job.Status.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("training:run-resume", args=[run.pk]), {"steps": "6"}, follow=True)
    run.refresh_from_db()
    assert "resumes from step 0" in response.content.decode()
    assert (run.status, run.total_steps, sent) == (Job.Status.QUEUED, 6, [run.job_id])
    response = admin.post(reverse("training:run-resume", args=[run.pk]), follow=True)
    assert "still queued" in response.content.decode()


def test_sample_grid_is_served_as_png(admin: Client, photo_dir: Path) -> None:
    run = _run(photo_dir)
    assert run.job_id is not None
    png = artifacts.grid_png(np.zeros((4, 8, 8, 3), dtype=np.uint8))
    services.run_record(run.pk, run.job_id, services.Progress(4, {}, [], (4, 8, 1.0, png)))
    response = admin.get(reverse("training:sample", args=[run.pk, 4]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == png
    assert admin.get(reverse("training:sample", args=[run.pk, 5])).status_code == 404


def test_index_button_queues_an_index_job_for_a_trained_run(
    admin: Client, photo_dir: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    run = _run(photo_dir)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    queued: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.TRAIN, queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("training:run-index", args=[run.pk]))
    job = Job.objects.get(pk=queued[0])
    assert response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.params == {"run_id": run.pk, "action": "index"}


def test_get_on_the_new_run_url_goes_to_the_start_form_instead_of_a_blank_405(admin: Client) -> None:
    response = admin.get(reverse("training:run-create"), follow=True)
    assert response.redirect_chain == [(reverse("training:runs"), 302)]
    assert 'data-testid="run-start"' in response.content.decode()
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize("name", ["training:run-cancel", "training:run-resume", "training:run-index"])
def test_get_on_a_run_action_url_shows_the_run_and_changes_nothing(
    admin: Client, photo_dir: Path, name: str
) -> None:
    run = _run(photo_dir)
    response = admin.get(reverse(name, args=[run.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("training:run", args=[run.pk])
    assert admin.get(reverse(name, args=[run.pk + 1000])).status_code == 404
    fresh = TrainingRun.objects.get(pk=run.pk)
    assert (fresh.status, fresh.updated_at) == (run.status, run.updated_at)
    assert Job.objects.filter(cancel_requested=True).count() == 0 and Job.objects.count() == 1


def test_run_page_labels_its_index_job_and_follows_its_jobs_live(admin: Client, photo_dir: Path) -> None:
    run = _run(photo_dir)
    index = Job.objects.create(kind=Job.Kind.TRAIN, params={"run_id": run.pk, "action": "index"})
    page = admin.get(reverse("training:run", args=[run.pk])).content.decode()
    assert f'<tr data-job-row="{index.pk}">' in page and f'<tr data-job-row="{run.job_id}">' in page
    row = page[page.index(f'<tr data-job-row="{index.pk}">') :]
    assert row.index("index with this encoder") < row.index("</tr>")
    assert 'data-jobs-live data-ws-path="/ws/jobs/"' in page and "js/jobs.js" in page
