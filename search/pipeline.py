"""The declared pipeline: what runs after what, in one place.

    upload / import -> ingest job (normalise each photo)
                    -> extract job (embeddings, SIFT, index add, provisional cluster assignment, matches)

Services do one step each; the doors that run a step (the Celery task, the CLI's inline mode) come
through here, so the next step is never an enqueue hidden at the end of a service.
"""

from __future__ import annotations

from typing import Any

from flatsite.jobs import services as jobs
from search.listings import ingest
from search.matching import features
from search.models import Job


def extract_after_ingest(job: Job) -> dict[str, Any]:
    """After an ingest job: the extract job that makes its photos searchable (unless it asked for none)."""
    if not job.params.get("extract", True):
        return {}
    extract = features.extract_after_ingest(job.created_by)
    return {"extract_job": extract.pk if extract is not None else None}


def ingest_run(job_id: int) -> Job:
    """Run a claimed ingest job, then queue what follows it."""
    return ingest.job_ingest_run(job_id, then=extract_after_ingest)


def ingest_inline(job_id: int) -> Job:
    """Claim and run an ingest job in the calling process (CLI without a worker), then what follows it."""
    if jobs.job_claim(job_id, worker="inline") is None:
        return Job.objects.get(pk=job_id)
    return ingest_run(job_id)
