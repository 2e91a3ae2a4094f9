"""All websocket routes of the project."""

from flatsite.jobs.routing import websocket_urlpatterns as search_ws
from training.routing import websocket_urlpatterns as training_ws

websocket_urlpatterns = [*search_ws, *training_ws]
