"""Job pages: what their live scripts need to draw new jobs and finished ones from snapshots alone."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from flatsite.jobs import services as jobs
from search.models import Job
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_running_job_page_marks_its_cancel_button_for_the_live_script() -> None:
    owner = UserFactory(role="realtor")
    job = Job.objects.create(
        kind=Job.Kind.INGEST, created_by=owner, status=Job.Status.RUNNING, message="step 1"
    )
    page = _client(owner).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert f'data-job-cancel="{job.pk}"' in page and "Cancel job" in page
    assert 'data-final="false"' in page and "step 1" in page


def test_finished_job_page_shows_when_it_ended_not_its_last_progress_message() -> None:
    owner = UserFactory(role="admin")
    job = Job.objects.create(kind=Job.Kind.CLUSTER, created_by=owner, message="saving clusters")
    jobs.job_finish(job.pk)
    page = _client(owner).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "Cancel job" not in page and "saving clusters" not in page
    assert 'data-final="true"' in page and ">finished " in page


def test_job_list_lets_the_live_script_add_rows_for_the_viewer() -> None:
    owner = UserFactory(role="realtor", username="rita")
    Job.objects.create(kind=Job.Kind.INGEST, created_by=owner, done=1, total=3)
    page = _client(owner).get(reverse("jobs:list")).content.decode()
    assert "data-jobs-insert" in page and f'data-job-url="{reverse("jobs:detail", args=[0])}"' in page
    assert f'data-viewer=\'{{"id": {owner.pk}, "name": "rita"}}\'' in page
    assert "1/3 photos" in page  # an ingest job counts photos


def test_job_pages_name_a_training_runs_index_job() -> None:
    admin = UserFactory(role="admin")
    job = Job.objects.create(kind=Job.Kind.TRAIN, created_by=admin, params={"run_id": 1, "action": "index"})
    client = _client(admin)
    assert "index with this encoder" in client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "train (index with this encoder)" in client.get(reverse("jobs:list")).content.decode()
