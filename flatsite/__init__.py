"""flatsite: duplicate and same-room photo search for real-estate listings."""

from flatsite.celery import app as celery_app

__all__ = ["celery_app"]
