"""Load test: concurrent realtors uploading photos and searching against the real app on loopback.

python -m bench.load [--users 50] [--minutes 10] [--photos 200] [--grace 300]
Builds a fresh data folder and database (SQLite, or a new PostgreSQL database next to DATABASE_URL's
when that is set), seeds a collection with `import_photos --inline` of the first --photos Houses
photos, creates one realtor with two listings per simulated user, then starts a private redis-server,
web (`python -m flatsite.web`, as the Procfile runs it) and one Celery worker (concurrency 1, with
beat, as the Procfile) and runs locust headless (bench/load/locustfile.py) against it. Samples the web
process's memory every 5 s, records the worker queue backlog when the run ends and waits up to --grace
seconds for every acknowledged photo to reach a final state. Prints a table and writes
bench/results/load_test.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common.paths import RESULTS, ROOT

BIN = Path(sys.executable).parent
PASSWORD = "load-test-pass-8472"
SAMPLE_EVERY_S = 5.0


@contextlib.contextmanager
def fresh_database() -> Iterator[str | None]:
    """None for SQLite; with a PostgreSQL DATABASE_URL, a new empty database there (dropped after)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield None
        return
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    name = f"flatsite_load_{uuid.uuid4().hex[:8]}"
    admin = {"host": cfg["HOST"], "port": cfg["PORT"] or 5432, "user": cfg["USER"], "dbname": "postgres"}
    if cfg.get("PASSWORD"):
        admin["password"] = cfg["PASSWORD"]
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(data_dir: Path, database_url: str | None) -> None:
    """Configure this process like a production web process on the fresh data folder, and migrate."""
    os.environ["FLATSITE_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "flatsite.settings"
    os.environ["FLATSITE_ALLOW_DEV_KEY"] = "1"
    os.environ["CHANNEL_BACKEND"] = "memory"  # the inline seed import publishes progress to nobody
    os.environ.pop("DEBUG", None)  # DEBUG would keep every SQL query in memory
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)


def migrate_again(env: dict[str, str]) -> None:
    """Migrate once more, in a fresh process, right before the services start.

    Seeding takes minutes; in a working tree that is being edited, a migration added meanwhile would
    leave the web and worker (which load the code as it is now) on a database without its columns.
    """
    argv = [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v0"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"migrate before the run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def seed(houses: Path, photos: int, into: Path) -> tuple[list[str], float]:
    """Import the first `photos` Houses photos inline; returns their names and the seconds it took."""
    from django.core.management import call_command

    into.mkdir(parents=True)
    for info in houses.glob("HousesInfo*.txt"):
        shutil.copy(info, into / info.name)
    names = [p.name for p in sorted(houses.glob("*.jpg"), key=lambda p: (int(p.name.split("_")[0]), p.name))]
    for name in names[:photos]:
        os.symlink(houses / name, into / name)
    started = time.perf_counter()
    call_command("import_photos", str(into), "--inline", stdout=io.StringIO())
    return names, time.perf_counter() - started


def realtors_create(count: int) -> list[dict[str, Any]]:
    """One realtor account with two listings per simulated user."""
    from flatsite.core import accounts
    from search.listings import services as listings

    accounts.roles_setup()
    out = []
    for i in range(count):
        user = accounts.user_create(username=f"load-realtor-{i:02d}", password=PASSWORD, role="realtor")
        owned = [
            listings.listing_create(owner=user, title=f"Load test flat {i}-{j}", zipcode="92000").pk
            for j in range(2)
        ]
        out.append({"username": user.get_username(), "password": PASSWORD, "listings": owned})
    return out


def worker_start(env: dict[str, str], work: Path) -> Any:
    """The Procfile's worker: default and gpu queues, concurrency 1, beat (the reconciler) embedded."""
    from tests.processes import Service, wait_until

    argv = [str(BIN / "celery"), "-A", "flatsite", "worker", "-B", "-Q", "default,gpu", "--concurrency", "1"]
    argv += [
        "--loglevel",
        "INFO",
        "-s",
        str(work / "celerybeat-schedule"),
        "-n",
        f"load-{uuid.uuid4().hex[:6]}@%h",
    ]
    log_path = work / "logs" / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    service = Service(name="worker", proc=proc, log_path=log_path)
    wait_until(lambda: " ready." in service.log() or not service.alive(), timeout=180, what="the worker")
    if not service.alive():
        raise SystemExit(f"the worker did not start:\n{service.log()[-3000:]}")
    return service


def warm_up(url: str, account: dict[str, Any], query: Path) -> None:
    """One search before the clock starts: the web process loads the encoder and the index on first use."""
    import requests

    token = requests.post(f"{url}/api/token/", data=account, timeout=120).json()["token"]
    with open(query, "rb") as fh:
        resp = requests.post(
            f"{url}/api/search/",
            files={"photo": fh},
            headers={"Authorization": f"Token {token}"},
            timeout=300,
        )
    resp.raise_for_status()


def rss_sample(web: Any, worker: Any, t0: float) -> dict[str, float]:
    """Resident memory (MB) of daphne, daphne plus its decoder children, and the worker with its pool."""
    import psutil

    def tree(pid: int) -> tuple[float, float, float]:
        root = psutil.Process(pid)
        main = root.memory_info().rss
        total, cpu = main, sum(root.cpu_times()[:2])
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
                cpu += sum(child.cpu_times()[:2])
        return main / 2**20, total / 2**20, cpu

    web_main, web_total, web_cpu = tree(web.proc.pid)
    _, worker_total, worker_cpu = tree(worker.proc.pid)
    return {
        "t": round(time.monotonic() - t0, 1),
        "web": web_main,
        "web_total": web_total,
        "worker": worker_total,
        "index_mb": live_index_mb(),
        "web_cpu_s": web_cpu,  # user + system CPU seconds so far (children that exited are not counted)
        "worker_cpu_s": worker_cpu,
        "load1": os.getloadavg()[0],
    }


def live_index_mb() -> float:
    """MB of vectors in the live indexes: the web process holds them in memory and they grow with uploads."""
    from search.models import Feature, IndexVersion

    total = 0
    live = IndexVersion.objects.filter(status=IndexVersion.Status.LIVE).values_list("encoder", "count")
    for encoder, count in live:
        dim = Feature.objects.filter(encoder=encoder).values_list("dim", flat=True).first() or 0
        total += count * dim * 4  # float32
    return total / 2**20


def locust_run(
    args: argparse.Namespace, url: str, config: Path, work: Path, web: Any, worker: Any
) -> list[dict[str, float]]:
    """Run locust headless to the end, sampling memory every 5 s; returns the samples."""
    argv = [str(BIN / "locust"), "-f", str(ROOT / "bench" / "load" / "locustfile.py"), "--headless"]
    argv += ["-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{round(args.minutes * 60)}s"]
    argv += ["--host", url, "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"]
    # The repository root on the path: the locustfile imports bench.load.report (no Django in either).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "FLATSITE_LOAD_CONFIG": str(config), "PYTHONPATH": path}
    with open(work / "logs" / "locust.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        samples = [rss_sample(web, worker, t0)]
        while proc.poll() is None:
            time.sleep(SAMPLE_EVERY_S)
            samples.append(rss_sample(web, worker, t0))
    if proc.returncode not in (0, 1):  # locust exits 1 when any request failed
        raise SystemExit(
            f"locust failed ({proc.returncode}):\n{(work / 'logs' / 'locust.log').read_text()[-3000:]}"
        )
    return samples


def backlog(redis_url: str) -> dict[str, int]:
    """Messages waiting in the worker's queues, delivered-but-unacknowledged, and unfinished jobs."""
    import redis

    from search.models import Job

    r = redis.Redis.from_url(redis_url)
    out = {"default": int(r.llen("default")), "gpu": int(r.llen("gpu")), "unacked": int(r.hlen("unacked"))}
    for status in ("queued", "running"):
        out[f"jobs_{status}"] = Job.objects.filter(status=status).count()
    return out


def photo_states(accepted: list[int]) -> dict[str, int]:
    """Statuses of the acknowledged photos ('missing' counts any that vanished)."""
    from django.db.models import Count

    from search.models import Photo

    rows = Photo.objects.filter(pk__in=accepted).values("status").annotate(n=Count("id"))
    out = {row["status"]: row["n"] for row in rows}
    missing = len(set(accepted)) - sum(out.values())
    if missing:
        out["missing"] = missing
    return out


def final_count(states: dict[str, int]) -> int:
    """How many photos are in a final state."""
    from search.models import Photo

    return sum(n for status, n in states.items() if status in Photo.FINAL_STATES)


def settle(accepted: list[int], grace: float) -> tuple[dict[str, int], float]:
    """Wait up to `grace` seconds for every acknowledged photo to reach a final state."""
    started = time.monotonic()
    while True:
        states = photo_states(accepted)
        if final_count(states) == len(set(accepted)) or time.monotonic() - started > grace:
            return states, round(time.monotonic() - started, 1)
        time.sleep(5)


def tracebacks(*services: Any) -> dict[str, Any]:
    """How many tracebacks each process logged, with the first one of each."""
    out: dict[str, Any] = {}
    for service in services:
        text = service.log()
        count = text.count("Traceback (most recent call last)")
        first = text[text.find("Traceback") :][:2500] if count else ""
        out[service.name] = {"count": count, "first": first}
    return out


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50, help="simulated realtors (one account each)")
    parser.add_argument("--minutes", type=float, default=10.0, help="run time once spawning starts")
    parser.add_argument("--photos", type=int, default=200, help="Houses photos in the seeded collection")
    parser.add_argument("--spawn-rate", type=float, default=1.0, help="users started per second")
    parser.add_argument("--grace", type=float, default=300.0, help="seconds to wait for photos after the run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    args = parser.parse_args()
    if args.users < 1 or args.minutes <= 0 or not 1 <= args.photos <= 800:
        parser.error("--users >= 1, --minutes > 0 and 1 <= --photos <= 800 please")
    return args


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.shared_data import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data is absent: nothing to load-test with")
    work = Path(tempfile.mkdtemp(prefix="flatsite-load-"))
    (work / "logs").mkdir()
    try:
        with fresh_database() as database_url:
            result = run(args, shared / "houses", work, database_url)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_test.json").write_text(json.dumps(result, indent=2))
    from bench.load.report import table

    print(table(result))


def run(args: argparse.Namespace, houses: Path, work: Path, database_url: str | None) -> dict[str, Any]:
    """Set up, load, measure, tear down; returns the result document."""
    from django.db import connection

    from tests import processes

    setup_django(work / "data", database_url)
    names, seed_s = seed(houses, args.photos, work / "houses")
    accounts = realtors_create(args.users)
    print(f"seeded {args.photos} photos in {seed_s:.0f} s; {args.users} realtors", flush=True)
    seeded, rest = names[: args.photos], names[args.photos :]
    config = {
        "houses": str(houses),
        "accounts": accounts,
        "upload_names": rest or seeded,
        # Distinct upload copies: a realtor uploads ~1.6 photos a minute here; once the pool is used up the
        # uploads repeat byte for byte and are answered "duplicate" without work (bench/README.md).
        "upload_pool": min(max(round(2 * args.users * args.minutes), 100), 3000),
        "query_names": seeded,
        "query_pool": 100,
        "records": str(work / "records.json"),
    }
    (work / "config.json").write_text(json.dumps(config))
    connection.close()
    redis = processes.redis_server(processes.free_port(), work / "logs")
    web = worker = None
    try:
        env = processes.service_env(redis_url=redis.extra["url"], data_dir=work / "data")
        migrate_again(env)
        web = processes.daphne_server(env, work / "logs")
        worker = worker_start(env, work)
        warm_up(web.extra["url"], accounts[0], houses / seeded[0])
        load_start = os.getloadavg()[0]
        samples = locust_run(args, web.extra["url"], work / "config.json", work, web, worker)
        at_end = backlog(redis.extra["url"])
        raw = json.loads((work / "records.json").read_text())
        states_end = photo_states(raw["accepted"])
        states, settle_s = settle(raw["accepted"], args.grace)
        errors = tracebacks(web, worker)
    finally:
        for service in (worker, web, redis):
            if service is not None:
                service.stop(graceful=True)
    from bench.load.report import summarise

    facts = {
        "database": connection.vendor,
        "seed_s": seed_s,
        "load_start": load_start,
        "backlog_at_end": at_end,
        "final_at_end": final_count(states_end),
        "final_after_grace": final_count(states),
        "states": states,
        "settle_s": settle_s,
        "tracebacks": errors,
    }
    return summarise(vars(args), raw, samples, facts)


if __name__ == "__main__":
    main()
