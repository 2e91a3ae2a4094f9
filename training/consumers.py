"""Websocket consumers of training runs: admins only; a snapshot, then new metric rows; never write."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flatsite.core import roles
from flatsite.jobs import events as job_events
from training import events, selectors


def _code_for(user: Any) -> int | None:
    """None when the user may watch training, else the close code (4401 anonymous, 4403 not allowed)."""
    if user is None or not user.is_authenticated:
        return 4401
    return None if roles.can(user, roles.MANAGE_JOBS) else 4403


class RunConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """One run, live: a snapshot, then updates with the metric rows this page lacks; also follows the run's
    current job so reconciler or jobs-page changes show."""

    job_group: str | None = None
    job_status: str | None = None
    cursor: events.Cursor | None = None  # the metric rows this connection's page holds

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        code = await database_sync_to_async(_code_for)(self.scope.get("user"))
        message = None if code else await self._message()
        if message is None:
            await self.close(code=code or 4404)
            return
        self.group = events.run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send(message)

    @database_sync_to_async
    def _message(self) -> dict[str, Any] | None:
        run = selectors.run_get(self.run_id)
        if run is None:
            return None
        message, self.cursor = events.run_message(run, self.cursor)
        return message

    async def _send(self, message: dict[str, Any]) -> None:
        job = message["run"].get("job") or {}
        self.job_status = job.get("status")
        group = job_events.job_group(int(job["id"])) if job else None
        if group != self.job_group:
            if self.job_group is not None:
                await self.channel_layer.group_discard(self.job_group, self.channel_name)
            if group is not None:
                await self.channel_layer.group_add(group, self.channel_name)
            self.job_group = group
        await self.send_json(message)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # A page that found a gap in its metric rows asks for the whole history again.
        if isinstance(content, dict) and content.get("type") == "resync":
            self.cursor = None
            await self._resend()

    async def _resend(self) -> None:
        message = await self._message()
        if message is not None:
            await self._send(message)

    async def disconnect(self, code: int) -> None:
        for group in (getattr(self, "group", None), self.job_group):
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def run_changed(self, event: dict[str, Any]) -> None:
        await self._resend()

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        # Only a status change matters here (progress arrives as run changes); re-read the run.
        if event["job"].get("status") != self.job_status:
            await self._resend()


class RunListConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Live rows of every run, for the run list page."""

    async def connect(self) -> None:
        code = await database_sync_to_async(_code_for)(self.scope.get("user"))
        if code:
            await self.close(code=code)
            return
        await self.channel_layer.group_add(events.RUNS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(events.RUNS_GROUP, self.channel_name)

    async def run_row(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "row", "run": event["run"]})
