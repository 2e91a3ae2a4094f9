"""Integration fixtures: a Redis database of this run, a data folder shared with real worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import processes


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database of this test run alone (skips the test when no Redis answers)."""
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    problem = processes.redis_available(base)
    if problem:
        pytest.skip(f"needs Redis: {problem}; start one (bin/test does) or set REDIS_URL")
    with processes.redis_database(base) as url:
        yield url


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FLATSITE_DATA_DIR of the worker and web processes, and of the test itself."""
    return tmp_path_factory.mktemp("shared-data")


@pytest.fixture(scope="session")
def process_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where worker and server logs go (their tails are printed when a test fails)."""
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture(autouse=True)
def _data_dir(request: pytest.FixtureRequest, shared_data_dir: Path) -> None:
    """Point this process at the subprocesses' data folder (overrides tests/conftest.py's per-test one)."""
    settings = request.getfixturevalue("settings")
    settings.DATA_DIR = shared_data_dir
    settings.MEDIA_ROOT = shared_data_dir / "media"
    settings.PRIVATE_ROOT = shared_data_dir / "private"
    settings.INDEX_ROOT = shared_data_dir / "index"
    settings.CHECKPOINT_ROOT = shared_data_dir / "checkpoints"
    settings.STAGING_ROOT = shared_data_dir / "staging"


@pytest.fixture
def send_tasks(redis_url: str) -> Iterator[str]:
    """Tasks enqueued by this process go to the run's Redis database instead of running eagerly."""
    with processes.tasks_sent_to(redis_url):
        yield redis_url


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember failures so fixture teardown can print the subprocess logs."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def stop_all(request: pytest.FixtureRequest, services: list[processes.Service]) -> None:
    """Kill the services; print their log tails when the test failed."""
    for service in services:
        service.stop()
        if request.node.stash.get(FAILED, False):
            print(f"----- {service.name} log (tail) -----\n{service.log()[-6000:]}")


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest,
    django_db_setup: Any,
    redis_url: str,
    shared_data_dir: Path,
    process_logs: Path,
) -> Iterator[Callable[..., processes.Service]]:
    """Factory of Celery worker processes; every one started is killed when the test ends."""
    started: list[processes.Service] = []

    def start(
        name: str = "worker", wait: bool = True, queues: str = "default,gpu", **env: str
    ) -> processes.Service:
        environment = processes.service_env(redis_url=redis_url, data_dir=shared_data_dir, **env)
        worker = processes.celery_worker(environment, process_logs, name=name, wait=wait, queues=queues)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        stop_all(request, started)


@pytest.fixture(scope="class")
def worker(
    request: pytest.FixtureRequest,
    django_db_setup: Any,
    redis_url: str,
    shared_data_dir: Path,
    process_logs: Path,
) -> Iterator[processes.Service]:
    """One Celery worker shared by the tests of a class (it only needs the test database to exist)."""
    extra = getattr(request.cls, "worker_env", {})  # a test class may set the worker's environment
    environment = processes.service_env(redis_url=redis_url, data_dir=shared_data_dir, **extra)
    service = processes.celery_worker(environment, process_logs, name="shared-worker")
    try:
        yield service
    finally:
        service.stop()
