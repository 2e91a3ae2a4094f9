"""Websocket URL routes of the job pages."""

from django.urls import path

from flatsite.jobs import consumers

websocket_urlpatterns = [
    path("ws/jobs/", consumers.JobListConsumer.as_asgi(), name="ws-jobs"),
    path("ws/jobs/<int:job_id>/", consumers.JobConsumer.as_asgi(), name="ws-job"),
]
