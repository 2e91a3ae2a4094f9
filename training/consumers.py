"""Websocket consumers of training runs: admins only; full snapshots; never write."""

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
    """Live snapshots of one run; also follows its current job so reconciler or jobs-page changes show."""

    job_group: str | None = None
    job_status: str | None = None

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        code = await database_sync_to_async(_code_for)(self.scope.get("user"))
        snapshot = None if code else await self._snapshot()
        if snapshot is None:
            await self.close(code=code or 4404)
            return
        self.group = events.run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send(snapshot)

    @database_sync_to_async
    def _snapshot(self) -> dict[str, Any] | None:
        run = selectors.run_get(self.run_id)
        return events.run_snapshot(run) if run is not None else None

    async def _send(self, snapshot: dict[str, Any]) -> None:
        job = snapshot.get("job") or {}
        self.job_status = job.get("status")
        group = job_events.job_group(int(job["id"])) if job else None
        if group != self.job_group:
            if self.job_group is not None:
                await self.channel_layer.group_discard(self.job_group, self.channel_name)
            if group is not None:
                await self.channel_layer.group_add(group, self.channel_name)
            self.job_group = group
        await self.send_json({"type": "snapshot", "run": snapshot})

    async def disconnect(self, code: int) -> None:
        for group in (getattr(self, "group", None), self.job_group):
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def run_snapshot(self, event: dict[str, Any]) -> None:
        await self._send(event["run"])

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        # Only a status change matters here (progress arrives as run snapshots); re-read the whole run.
        if event["job"].get("status") != self.job_status:
            snapshot = await self._snapshot()
            if snapshot is not None:
                await self._send(snapshot)


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
