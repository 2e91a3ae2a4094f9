"""Websocket consumers: check permissions, join job groups, forward snapshots; never write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flatsite.core import roles
from flatsite.jobs import events, hooks, selectors


class CoalescingSender(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Sends each key's newest snapshot at most every SEND_INTERVAL_S; newer ones replace waiting ones.

    Daphne buffers whatever a slow client has not read yet, without limit, so forwarding every event
    would grow the server without bound in a burst. Snapshots are complete, so only the newest matters.
    """

    SEND_INTERVAL_S = 0.1
    _pending: dict[Any, dict[str, Any]]
    _sent_at: float = 0.0
    _flusher: asyncio.Task[None] | None = None

    async def send_latest(self, key: Any, message: dict[str, Any]) -> None:
        """Queue message as key's newest state; a flush within SEND_INTERVAL_S sends it."""
        if not hasattr(self, "_pending"):
            self._pending = {}
        self._pending[key] = message
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            wait = self._sent_at + self.SEND_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # events arriving meanwhile replace what waits
            batch, self._pending = self._pending, {}
            self._sent_at = time.monotonic()
            for message in batch.values():
                await self.send_json(message)

    def stop_sending(self) -> None:
        """Drop what waits (the socket is closing)."""
        if self._flusher is not None:
            self._flusher.cancel()


class JobConsumer(CoalescingSender):
    """Live snapshots of one job for users allowed to watch it (coalesced for slow pages)."""

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
        return {**events.job_snapshot(job), **hooks.job_details(job)}

    async def disconnect(self, code: int) -> None:
        self.stop_sending()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        job = event["job"]
        if hooks.details_fresh(str(job.get("kind"))):
            # Details that change as the job runs (e.g. per-photo outcomes) are read fresh from the database.
            job = await self._snapshot(self.scope.get("user"), int(job["id"])) or job
        await self.send_latest("job", {"type": "snapshot", "job": job})


class JobListConsumer(CoalescingSender):
    """Live snapshots of every job a user may see (their own; all for admins), coalesced per job."""

    RESYNC_SIZE = 100  # as many jobs as the Jobs page lists

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        is_admin = await database_sync_to_async(roles.can)(user, roles.MANAGE_JOBS)
        self.group = events.jobs_group(None if is_admin else user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # What changed between the page's render and this connect (or while reconnecting) was sent to no
        # one: the newest jobs' snapshots, oldest first, bring the page up to date.
        for snapshot in await self._newest(user):
            await self.send_latest(snapshot["id"], {"type": "snapshot", "job": snapshot})

    @database_sync_to_async
    def _newest(self, user: Any) -> list[dict[str, Any]]:
        newest = list(selectors.jobs_visible(user)[: self.RESYNC_SIZE])
        return [events.job_snapshot(job) for job in reversed(newest)]

    async def disconnect(self, code: int) -> None:
        self.stop_sending()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_snapshot(self, event: dict[str, Any]) -> None:
        await self.send_latest(event["job"]["id"], {"type": "snapshot", "job": event["job"]})
