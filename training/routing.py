"""Websocket URL routes of the training app."""

from django.urls import path

from training import consumers

websocket_urlpatterns = [
    path("ws/training/runs/", consumers.RunListConsumer.as_asgi(), name="ws-training-runs"),
    path("ws/training/runs/<int:run_id>/", consumers.RunConsumer.as_asgi(), name="ws-training-run"),
]
