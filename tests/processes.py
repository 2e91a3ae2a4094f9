"""Real server and worker processes for integration and browser tests: start, wait until ready, kill."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv running pytest also holds celery
_CLAIM_PREFIX = "flatsite:test-redis-db:"
_CLAIM_TTL_S = 3 * 3600  # a crashed run's claim expires; a live run never lasts this long


class ProcessFailed(RuntimeError):
    """A server or worker did not become ready (its log is in the message)."""


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Service:
    """One child process (in its own process group) with its combined output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        """Whether the main process still runs."""
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """Direct child pids (the prefork pool processes of a Celery worker)."""
        found: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def stop(self, timeout: float = 5.0, *, graceful: bool = False) -> None:
        """Kill the whole process group (after a SIGTERM and up to timeout seconds when graceful)."""
        if graceful and self.alive():
            _signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Pool children may outlive a killed master: the whole group goes, always.
        _signal_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook giving the child SIGKILL when pytest dies, so no worker outlives a killed run."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the hook itself must not import
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


def _spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    # One log per process start: readiness checks must never read an earlier process's lines.
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:8]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group, so stop() reaches every pool child
            preexec_fn=_die_with_parent(),
        )
    return Service(name=name, proc=proc, log_path=log_path)


def _await_ready(service: Service, ready: Callable[[], Any], timeout: float) -> Any:
    def check() -> Any:
        if not service.alive():
            raise ProcessFailed(
                f"{service.name} exited with {service.proc.returncode}:\n{service.log()[-4000:]}"
            )
        return ready()

    try:
        return wait_until(check, timeout=timeout, interval=0.1, what=f"{service.name} to start")
    except BaseException as exc:
        service.stop()
        if isinstance(exc, TimeoutError):
            raise ProcessFailed(
                f"{service.name} not ready in {timeout:.0f} s:\n{service.log()[-4000:]}"
            ) from exc
        raise


def database_url() -> str:
    """A DATABASE_URL naming the database the test run uses (pytest-django's test database)."""
    from django.db import connection

    cfg = connection.settings_dict
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(cfg['NAME']).resolve()}"
    if cfg["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(cfg.get("USER") or "", safe="")
        if cfg.get("PASSWORD"):
            auth += ":" + quote(cfg["PASSWORD"], safe="")
        host = cfg.get("HOST") or "localhost"
        port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
        return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{quote(cfg['NAME'], safe='')}"
    raise RuntimeError(f"no DATABASE_URL form for {cfg['ENGINE']}")


def service_env(*, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a web or worker process sharing this test's database, data folder and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CELERY_", "SECURE_"))}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="flatsite.settings",
        FLATSITE_ALLOW_DEV_KEY="1",
        CELERY_TASK_ALWAYS_EAGER="0",
        CHANNEL_BACKEND="redis",
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CHANNEL_REDIS_URL=redis_url,
        FLATSITE_DATA_DIR=str(data_dir),
        SECURE_COOKIES="0",  # the test server speaks plain http on loopback
        PYTHONUNBUFFERED="1",
    )
    env.pop("DEBUG", None)
    env.update(extra)
    return env


def celery_worker(
    env: dict[str, str],
    log_dir: Path,
    *,
    name: str = "worker",
    timeout: float = 120,
    wait: bool = True,
    queues: str = "default,gpu",
) -> Service:
    """Start `celery worker` on the queues and (unless wait=False) wait until it consumes from them."""
    node = f"{name}-{uuid.uuid4().hex[:8]}@%h"
    argv = [str(BIN / "celery"), "-A", "flatsite", "worker", "-Q", queues, "--concurrency", "1"]
    argv += ["--pool", "prefork", "-l", "INFO", "-n", node]
    # No gossip/mingle/heartbeat: faster start and no chatter with workers of other test runs.
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    service = _spawn(name, argv, env, log_dir)
    service.extra["node"] = node.replace("%h", socket.gethostname())  # what Job.worker records
    if wait:
        worker_ready(service, timeout)
    return service


def worker_ready(service: Service, timeout: float = 120) -> None:
    """Wait until a worker started with wait=False consumes from its queues."""
    _await_ready(service, lambda: " ready." in service.log(), timeout)


def daphne_server(env: dict[str, str], log_dir: Path, *, name: str = "web", timeout: float = 180) -> Service:
    """Start web as every launcher does (flatsite.web) on a free loopback port; extra['url'] is its URL."""
    argv = [sys.executable, "-m", "flatsite.web", "-b", "127.0.0.1", "-p", "0"]
    service = _spawn(name, argv, env, log_dir)
    pattern = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")

    def ready() -> str | None:
        found = pattern.search(service.log())
        if found is None:
            return None
        url = f"http://127.0.0.1:{found.group(1)}"
        return url if _http_ok(url + "/accounts/login/") else None

    service.extra["url"] = _await_ready(service, ready, timeout)
    return service


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        # Generous: the first request imports the URLconf, and with it torch.
        with urllib.request.urlopen(url, timeout=30) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server(port: int, log_dir: Path, *, name: str = "redis", timeout: float = 20) -> Service:
    """Start a private, non-persistent redis-server on a loopback port (a restart loses every message)."""
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    service = _spawn(name, argv, dict(os.environ), log_dir)
    service.extra["url"] = f"redis://127.0.0.1:{port}/0"
    _await_ready(service, lambda: redis_available(service.extra["url"]) is None, timeout)
    return service


def redis_available(url: str) -> str | None:
    """None when Redis answers at url, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"no Redis answers at {url} ({exc.__class__.__name__}: {exc})"
    return None


@contextlib.contextmanager
def redis_database(base_url: str) -> Iterator[str]:
    """Claim a Redis database number no other test run uses, empty it, and yield its URL."""
    import redis

    parts = urlsplit(base_url)
    claims = redis.Redis.from_url(base_url, socket_connect_timeout=2)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for number in range(15, 0, -1):
        url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))
        if not claims.set(f"{_CLAIM_PREFIX}{number}", token, nx=True, ex=_CLAIM_TTL_S):
            continue
        try:
            # Messages left by a crashed earlier run would name job ids this run reuses.
            redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
            yield url
        finally:
            with contextlib.suppress(Exception):
                redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
                if claims.get(f"{_CLAIM_PREFIX}{number}") == token.encode():
                    claims.delete(f"{_CLAIM_PREFIX}{number}")
        return
    raise RuntimeError("every Redis database 1-15 is claimed by another test run")


@contextlib.contextmanager
def tasks_sent_to(broker_url: str) -> Iterator[None]:
    """Make this process's Celery app send tasks to broker_url instead of running them eagerly."""
    from flatsite.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    _reset_broker_pools(app)
    app.conf.update(broker_url=broker_url, task_always_eager=False)
    try:
        yield
    finally:
        _reset_broker_pools(app)
        app.conf.update(saved)


def _reset_broker_pools(app: Any) -> None:
    # The app and kombu cache connection and producer pools per broker URL; start from none.
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
