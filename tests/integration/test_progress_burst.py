"""10 000 progress events to a slow websocket client: bounded server memory, final page state = database."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from asgiref.sync import async_to_sync
from channels import layers
from django.test import Client
from django.utils import timezone

from flatsite.jobs import events
from search.models import Job
from tests import processes
from tests.factories import UserFactory
from tests.integration.conftest import stop_all

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]
EVENTS = 10_000
CLIENT_READ_PAUSE_S = 0.02  # the slow page: 50 messages a second at most


@pytest.fixture
def web(
    request: pytest.FixtureRequest, redis_url: str, shared_data_dir: Path, process_logs: Path
) -> Iterator[processes.Service]:
    env = processes.service_env(redis_url=redis_url, data_dir=shared_data_dir)
    server = processes.daphne_server(env, process_logs, name="burst-web")
    try:
        yield server
    finally:
        stop_all(request, [server])


@pytest.fixture
def redis_layer(settings: Any, redis_url: str) -> Iterator[Any]:
    """This process publishes to the server's channel layer (same Redis database, same capacity)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 200},
        }
    }
    layers.channel_layers.backends.clear()
    try:
        yield layers.get_channel_layer()
    finally:
        layers.channel_layers.backends.clear()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def _burst(layer: Any, job: Job) -> None:
    group = events.job_group(job.pk)
    for lo in range(1, EVENTS, 25):  # 25 sends in flight at a time: a burst, not a trickle
        sends = []
        for done in range(lo, min(lo + 25, EVENTS)):
            job.done = done
            message = {"type": "job.snapshot", "job": events.job_snapshot(job)}
            sends.append(layer.group_send(group, message))
        await asyncio.gather(*sends)


class SlowPage(threading.Thread):
    """Reads one message every CLIENT_READ_PAUSE_S until it shows `truth` (set once the burst is over)."""

    def __init__(self, ws: websocket.WebSocket, first: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.ws, self.last, self.received = ws, first, 0
        self.truth: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + 150

    def run(self) -> None:
        try:
            while self.last != self.truth and time.monotonic() < self.deadline:
                time.sleep(CLIENT_READ_PAUSE_S)
                self.last = json.loads(self.ws.recv())["job"]
                self.received += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


def _slow_client(url: str, cookie: str) -> websocket.WebSocket:
    ws = websocket.create_connection(
        url.replace("http://", "ws://"),
        header=[f"Cookie: sessionid={cookie}"],
        origin=url,
        timeout=30,
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)],  # a small window: the server must buffer
    )
    return ws


def test_a_burst_to_a_slow_client_keeps_server_memory_bounded_and_ends_in_the_database_state(
    web: processes.Service, redis_layer: Any
) -> None:
    admin = UserFactory(role="admin")
    job = Job.objects.create(kind=Job.Kind.EXTRACT, created_by=admin, status=Job.Status.RUNNING, total=EVENTS)
    browser = Client()
    browser.force_login(admin)
    ws = _slow_client(f"{web.extra['url']}/ws/jobs/{job.pk}/", browser.cookies["sessionid"].value)
    first = json.loads(ws.recv())
    assert first["job"]["done"] == 0
    rss_before = _rss_kb(web.proc.pid)
    page = SlowPage(ws, first["job"])
    page.start()

    async_to_sync(_burst)(redis_layer, job)
    Job.objects.filter(pk=job.pk).update(
        done=EVENTS, status=Job.Status.SUCCEEDED, finished_at=timezone.now(), message="all done"
    )
    final = Job.objects.get(pk=job.pk)
    page.truth = json.loads(json.dumps(events.job_snapshot(final)))
    events.job_changed(final)  # the real publisher: final snapshots are never throttled
    rss_after_burst = _rss_kb(web.proc.pid)
    page.join(timeout=160)
    ws.close()
    growth_mb = (rss_after_burst - rss_before) / 1024
    print(f"{EVENTS} events -> {page.received} messages to the slow page; daphne RSS +{growth_mb:.1f} MB")

    assert page.error is None, f"the page lost its connection after {page.received} messages: {page.error!r}"
    assert page.last == page.truth, f"page state after {page.received} messages differs from the database"
    # Coalesced: the slow page gets a bounded number of messages, not every event, and no backlog grows.
    assert page.received < 1000
    assert growth_mb < 50
