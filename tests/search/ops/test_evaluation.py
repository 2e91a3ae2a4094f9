"""Operations page: the Evaluate button, the side-by-side encoder comparison, and who may use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from search.matching import index
from search.ml.index import IndexConfig, build_index
from search.models import IndexVersion, Job
from search.ops import selectors as selectors_ops
from tests.flatsite.jobs.sending import task_send_replace

pytestmark = pytest.mark.django_db


def evaluated(
    encoder: str, number: int, recall: float, status: str = IndexVersion.Status.READY
) -> IndexVersion:
    ev = {
        "sample_size": 200, "seed": 0, "evaluated_at": "2026-01-02T03:04:05+00:00",
        "near_duplicate": {"recall_at_1": recall, "worst_edit": "crop20", "worst_recall": recall / 2},
        "room": {"knn_purity": 0.61, "ari": 0.27, "tags": 5},
    }  # fmt: skip
    return IndexVersion.objects.create(encoder=encoder, version=number, status=status, evaluation=ev)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_evaluate_button_queues_a_job_and_opens_its_page(
    admin_user: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.EVALUATE, sent.append)
    IndexVersion.objects.create(encoder="effnet-lite0", version=4, status=IndexVersion.Status.LIVE)
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(admin_user).post(
            "/operations/index-evaluate/", {"encoder": "effnet-lite0", "version": "4"}
        )
    job = Job.objects.get(kind=Job.Kind.EVALUATE)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert sent == [job.pk] and job.created_by == admin_user and job.params["version"] == 4


def test_evaluating_a_missing_version_shows_why(admin_user: Any) -> None:
    client = _client(admin_user)
    response = client.post(
        "/operations/index-evaluate/", {"encoder": "effnet-lite0", "version": "9"}, follow=True
    )
    assert b"Cannot evaluate: no effnet-lite0 index version 9" in response.content
    response = client.post(
        "/operations/index-evaluate/", {"encoder": "effnet-lite0", "version": "x"}, follow=True
    )
    assert b"Cannot evaluate" in response.content and not Job.objects.exists()


def test_only_admins_may_evaluate(moderator: Any, realtor: Any) -> None:
    IndexVersion.objects.create(encoder="effnet-lite0", version=1)
    for user in (moderator, realtor):
        response = _client(user).post(
            "/operations/index-evaluate/", {"encoder": "effnet-lite0", "version": "1"}
        )
        assert response.status_code == 403
    assert not Job.objects.exists()


def _on_disk(encoder: str) -> None:
    """Write the encoder's next index version file (numbered 1, 2, ... like the rows above)."""
    vectors = np.eye(4, dtype=np.float32)
    index.index_store(encoder).write(build_index(np.arange(4, dtype=np.int64), vectors, IndexConfig(dim=4)))


def test_the_page_compares_each_encoders_latest_evaluated_version(admin_user: Any) -> None:
    evaluated("effnet-lite0", 1, 0.5)
    evaluated("effnet-lite0", 2, 0.875, IndexVersion.Status.LIVE)
    evaluated("gan-run-3-step-40", 1, 0.25)
    IndexVersion.objects.create(encoder="gan-run-3-step-40", version=2)  # newer but not evaluated
    _on_disk("gan-run-3-step-40")
    page = _client(admin_user).get("/operations/")
    html = page.content.decode()
    assert page.status_code == 200 and "Encoder comparison" in html
    table = html.split('id="comparison"')[1].split("</section>")[0]
    assert "effnet-lite0 v2" in table and "gan-run-3-step-40 v1" in table and "effnet-lite0 v1" not in table
    assert "0.875" in table and "0.250" in table and "crop20 (0.125)" in table and "0.610" in table
    assert table.count("<button>Make live</button>") == 1  # the GAN column; the live one needs none
    _on_disk("gan-run-3-step-40")
    Path(index.index_store("gan-run-3-step-40").root / "v00000001.json").unlink()  # v1 pruned
    table = _client(admin_user).get("/operations/").content.decode().split('id="comparison"')[1]
    assert table.split("</section>")[0].count("<button>Make live</button>") == 0  # its files are gone
    columns = selectors_ops.encoder_comparison()
    assert [(c.encoder, c.version, c.live) for c in columns] == [
        ("effnet-lite0", 2, True),
        ("gan-run-3-step-40", 1, False),
    ]


def test_the_page_makes_the_same_number_of_queries_for_more_versions(admin_user: Any) -> None:
    client = _client(admin_user)
    evaluated("effnet-lite0", 1, 0.5)
    with CaptureQueriesContext(connection) as few:
        client.get("/operations/")
    for n in range(2, 8):
        evaluated("effnet-lite0", n, 0.5)
        evaluated(f"gan-run-{n}-step-10", 1, 0.5)
    with CaptureQueriesContext(connection) as many:
        client.get("/operations/")
    assert len(many) == len(few)


def test_a_skipped_room_measure_shows_its_reason(admin_user: Any) -> None:
    row = evaluated("effnet-lite0", 1, 0.5)
    row.evaluation["room"] = {"skipped": "needs at least 20 tagged photos, found 3", "tags": 1, "tagged": 3}
    row.save()
    html = _client(admin_user).get("/operations/").content.decode()
    assert "needs at least 20 tagged photos, found 3" in html
