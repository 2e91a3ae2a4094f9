"""Test helper: replace the sending of one job kind's task through the platform's one seam."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flatsite.jobs import services as jobs


def task_send_replace(monkeypatch: pytest.MonkeyPatch, kind: str, send: Callable[[int], object]) -> None:
    """Send `kind`'s tasks with send(job_id) instead of the queue; other kinds still go to the queue."""
    previous = jobs.task_send

    def replaced(sent_kind: str, job_id: int) -> None:
        if sent_kind == kind:
            send(job_id)
        else:
            previous(sent_kind, job_id)

    monkeypatch.setattr(jobs, "task_send", replaced)
