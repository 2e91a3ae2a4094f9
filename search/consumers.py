"""Websocket consumers: check permissions, join job groups, forward snapshots; never write."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from search import events, roles, selectors


class JobConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Live snapshots of one job for users allowed to watch it."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        snapshot = await self._snapshot(user, job_id)
        if snapshot is None:
            await self.close(code=4403)
            return
        self.group = events.job_group(job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", "job": snapshot})

    @database_sync_to_async
    def _snapshot(self, user: Any, job_id: int) -> dict[str, Any] | None:
        if user is None or not user.is_authenticated:
            return None
        job = selectors.job_viewable(user, job_id)
        if job is None:
            return None
        data = events.job_snapshot(job)
        data["items"] = selectors.job_items(job)
        return data

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        job = event["job"]
        if job.get("kind") == "ingest":
            # Per-photo outcomes are read fresh so the page always matches the database.
            job = await self._snapshot(self.scope.get("user"), int(job["id"])) or job
        await self.send_json({"type": "snapshot", "job": job})


class JobListConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Live snapshots of every job a user may see (their own; all for admins)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        is_admin = await database_sync_to_async(roles.can)(user, roles.MANAGE_JOBS)
        self.group = events.jobs_group(None if is_admin else user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "snapshot", "job": event["job"]})
