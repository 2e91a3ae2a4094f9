"""What the domain adds to the platform's jobs, declared by each domain app in its AppConfig.ready().

The platform knows no domain: a job page's details (e.g. per-photo outcomes of an ingest job) and the
domain's cleanup when the reconciler gives a job up come from here, filled once at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flatsite.jobs.models import Job

Details = Callable[[Job], dict[str, Any]]
Abandoned = Callable[[Job, str], None]

_details: list[Details] = []
_fresh_kinds: set[str] = set()
_abandoned: list[Abandoned] = []


def details_register(details: Details, *, fresh_for: tuple[str, ...] = ()) -> None:
    """Add details to every job page snapshot; jobs of the fresh_for kinds re-read them on each event."""
    if details not in _details:
        _details.append(details)
    _fresh_kinds.update(fresh_for)


def abandoned_register(cleanup: Abandoned) -> None:
    """Run cleanup(job, error) inside the transaction that fails a job the reconciler gives up."""
    if cleanup not in _abandoned:
        _abandoned.append(cleanup)


def job_details(job: Job) -> dict[str, Any]:
    """The domain's details of one job (merged from every registered source)."""
    merged: dict[str, Any] = {}
    for details in _details:
        merged.update(details(job))
    return merged


def details_fresh(kind: str) -> bool:
    """Whether a page must re-read a job's details on each event (they change as the job runs)."""
    return kind in _fresh_kinds


def job_abandoned(job: Job, error: str) -> None:
    """Run the domain's cleanup of a job given up."""
    for cleanup in _abandoned:
        cleanup(job, error)
