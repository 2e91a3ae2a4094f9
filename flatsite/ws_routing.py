"""All websocket routes of the project."""

from search.routing import websocket_urlpatterns as search_ws

websocket_urlpatterns = [*search_ws]
