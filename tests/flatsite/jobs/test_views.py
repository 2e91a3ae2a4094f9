"""Job pages: what their live scripts need to draw new jobs and finished ones from snapshots alone."""

from __future__ import annotations

import re

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


def _rows(page: str) -> list[int]:
    """Job ids of the table's rows, in page order."""
    return [int(pk) for pk in re.findall(r'data-job-row="(\d+)"', page)]


def test_job_list_filters_by_kind_and_status_and_keeps_the_choice_in_its_form() -> None:
    owner = UserFactory(role="admin")
    wanted = Job.objects.create(kind=Job.Kind.TRAIN, status=Job.Status.FAILED, created_by=owner)
    Job.objects.create(kind=Job.Kind.TRAIN, status=Job.Status.QUEUED, created_by=owner)
    Job.objects.create(kind=Job.Kind.INGEST, status=Job.Status.FAILED, created_by=owner)
    response = _client(owner).get(reverse("jobs:list"), {"kind": "train", "status": "failed"})
    page = response.content.decode()
    assert response.status_code == 200 and _rows(page) == [wanted.pk]
    assert '<option value="train" selected>' in page and '<option value="failed" selected>' in page
    assert '<option value="ingest">' in page  # every kind is offered
    assert "data-jobs-insert" not in page  # the live script must not add jobs outside the filter


def test_job_list_filter_shows_no_one_elses_jobs_to_a_realtor() -> None:
    owner, other = UserFactory(role="realtor"), UserFactory(role="realtor")
    mine = Job.objects.create(kind=Job.Kind.INGEST, created_by=owner)
    Job.objects.create(kind=Job.Kind.INGEST, created_by=other)
    assert _rows(_client(owner).get(reverse("jobs:list"), {"kind": "ingest"}).content.decode()) == [mine.pk]


def test_job_list_refuses_an_unknown_kind_or_status_with_a_message_not_a_crash() -> None:
    owner = UserFactory(role="realtor")
    job = Job.objects.create(kind=Job.Kind.INGEST, created_by=owner)
    for params, text in (
        ({"kind": "bogus"}, "Unknown kind “bogus”"),
        ({"status": "done"}, "Unknown status “done”"),
    ):
        response = _client(owner).get(reverse("jobs:list"), params)
        page = response.content.decode()
        assert response.status_code == 400 and text in page
        assert _rows(page) == [job.pk]  # the bad filter is dropped, the list still shown


def test_job_list_pages_51_jobs_newest_first_50_a_page() -> None:
    owner = UserFactory(role="realtor")
    Job.objects.bulk_create([Job(kind=Job.Kind.INGEST, created_by=owner) for _ in range(51)])
    ids = list(Job.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    client = _client(owner)
    first = client.get(reverse("jobs:list"), {"kind": "ingest"}).content.decode()
    assert _rows(first) == ids[:50] and "Page 1 of 2 (51 jobs)" in first
    assert 'href="?kind=ingest&amp;page=2"' in first  # the next page keeps the filter
    second = client.get(reverse("jobs:list"), {"kind": "ingest", "page": "2"})
    assert second.status_code == 200 and _rows(second.content.decode()) == ids[50:]
    assert "There is no page" not in second.content.decode()


def test_job_list_page_past_the_end_or_not_a_number_shows_a_real_page_with_a_note() -> None:
    owner = UserFactory(role="realtor")
    Job.objects.bulk_create([Job(kind=Job.Kind.INGEST, created_by=owner) for _ in range(51)])
    oldest = Job.objects.order_by("created_at", "id").first()
    assert oldest is not None
    client = _client(owner)
    past = client.get(reverse("jobs:list"), {"page": "9"}).content.decode()
    assert "There is no page 9: showing page 2 of 2." in past and _rows(past) == [oldest.pk]
    for bad, note in (("abc", "“abc” is not a page number: showing page 1."), ("0", "There is no page 0")):
        response = client.get(reverse("jobs:list"), {"page": bad})
        assert response.status_code == 200 and note in response.content.decode()
        assert len(_rows(response.content.decode())) == 50
