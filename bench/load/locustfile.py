"""Locust users for `python -m bench.load`: realtors who upload photos, search and watch their jobs.

Started by bench/load/load_test.py, which writes the JSON file named by $FLATSITE_LOAD_CONFIG (accounts,
their listings, the photo folder, where to write the raw records). Every photo a user uploads or
searches with is prepared in memory when this module is imported, before any user starts, so
generating them does not load the machine during the run.

Think time: `between(3, 15)` s after every action. A realtor reads the outcomes, looks at matches and
picks the next photo; a few seconds is fast for a person, so this errs towards more load. With 50
users that offers about 5 requests/s, of which about 1.7 searches/s and 0.6 uploads/s (1-3 photos).

A search answered 503 "busy" with Retry-After (the web process's admission gate is full) is sent again
after that many seconds, up to 3 times: each busy answer is reported on a row of its own (not as a
search, not as an error), and each search task's time from its first request to its final answer goes
to the report as the end-to-end search time.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

from bench.load.report import SEARCH_BUSY

CONFIG: dict[str, Any] = json.loads(Path(os.environ["FLATSITE_LOAD_CONFIG"]).read_text())
RECORDS: list[list[Any]] = []  # [name, ms, ok, status, started_at, error]
ACCEPTED: list[int] = []  # photo ids the API acknowledged as accepted (must reach a final state)
OUTCOMES: dict[str, int] = {}
JOBS: list[int] = []
SEARCH_TOOK: list[float] = []  # server-side image_search time (ms), without queueing and query decoding
SEARCH_STAGES: list[dict[str, float]] = []  # the answer's timings: ms per stage inside image_search
SEARCH_SERVER: list[float] = []  # Server-Timing app;dur: ms Django spent on the request, middleware included
# Per search task: [ms from the first request to the final answer, busy answers retried on the way].
SEARCH_E2E: list[list[float]] = []
MAX_BUSY_RETRIES = 3  # the 4th busy answer in a row counts as a failed search
BAD_UPLOAD_EVERY = 25  # one upload in 25 carries a truncated JPEG: it must be rejected, not crash anything


def _edit(path: Path, rng: random.Random) -> bytes:
    """Another realtor's copy: a crop, a colour and brightness shift, another JPEG quality."""
    from PIL import Image, ImageEnhance

    with Image.open(path) as img:
        w, h = img.size
        dx, dy = int(rng.uniform(0.02, 0.12) * w), int(rng.uniform(0.02, 0.12) * h)
        out = img.convert("RGB").crop((dx, dy, w - dx, h - dy))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.8, 1.2))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.9, 1.1))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(70, 92))
    return buf.getvalue()


def _prepare(names: list[str], count: int, seed: str) -> list[tuple[str, bytes]]:
    """`count` distinct edited copies of the named photos (cycling with new random edits)."""
    folder = Path(CONFIG["houses"])
    rng = random.Random(seed)
    out = []
    for i, name in zip(range(count), itertools.cycle(names)):
        out.append((f"{Path(name).stem}-r{i}.jpg", _edit(folder / name, rng)))
    return out


UPLOADS = _prepare(CONFIG["upload_names"], CONFIG["upload_pool"], "uploads")
QUERIES = _prepare(CONFIG["query_names"], CONFIG["query_pool"], "queries")
_next_upload = itertools.count()
_accounts = itertools.cycle(CONFIG["accounts"])


@events.request.add_listener
def _record(
    request_type: str, name: str, response_time: float, response: Any, exception: Any, **_: Any
) -> None:
    status = getattr(response, "status_code", 0) or 0
    error = "" if exception is None else str(exception)[:300]
    RECORDS.append([name, round(response_time, 1), exception is None, status, time.time(), error])


@events.quitting.add_listener
def _write(**_: Any) -> None:
    payload = {
        "records": RECORDS,
        "accepted": ACCEPTED,
        "outcomes": OUTCOMES,
        "jobs": JOBS,
        "search_took_ms": SEARCH_TOOK,
        "search_e2e": SEARCH_E2E,
        "search_stages": SEARCH_STAGES,
        "search_server_ms": SEARCH_SERVER,
    }
    Path(CONFIG["records"]).write_text(json.dumps(payload))


def _server_timing(header: str) -> float | None:
    """The `app;dur=` milliseconds of a Server-Timing header, or None."""
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:])
    return None


class Realtor(HttpUser):
    """One realtor with their own listings (accounts are shared round-robin when users > accounts)."""

    wait_time = between(3, 15)

    def on_start(self) -> None:
        """Log in through the login form, as a browser does; API posts then carry the CSRF token."""
        account = next(_accounts)
        self.listings: list[int] = account["listings"]
        self.last_job: int | None = None
        self.client.get("/accounts/login/", name="login")
        form = {
            "username": account["username"],
            "password": account["password"],
            "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
        }
        with self.client.post("/accounts/login/", data=form, name="login", catch_response=True) as resp:
            if "sessionid" not in self.client.cookies:
                resp.failure(f"login refused for {account['username']}")
        self.client.headers["X-CSRFToken"] = self.client.cookies.get("csrftoken", "")

    @task(1)
    def upload(self) -> None:
        """Upload 1-3 photos to one of the user's listings through the JSON API."""
        files = []
        for _ in range(random.randint(1, 3)):
            name, data = UPLOADS[next(_next_upload) % len(UPLOADS)]
            files.append(("files", (name, data, "image/jpeg")))
        if random.randrange(BAD_UPLOAD_EVERY) == 0:
            name, data = files[0][1][0], files[0][1][1]
            files.append(("files", (f"truncated-{name}", data[: len(data) // 3], "image/jpeg")))
        listing = random.choice(self.listings)
        url = f"/api/listings/{listing}/photos/"
        with self.client.post(url, files=files, name="upload-acknowledge", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:300]}")
                return
            body = resp.json()
            for outcome in body["outcomes"]:
                OUTCOMES[outcome["status"]] = OUTCOMES.get(outcome["status"], 0) + 1
                if outcome["status"] == "accepted":
                    ACCEPTED.append(outcome["photo_id"])
            if body["job"] is not None:
                self.last_job = body["job"]
                JOBS.append(body["job"])

    @task(3)
    def search(self) -> None:
        """Search with an edited copy of a collection photo; a busy answer is retried after Retry-After."""
        name, data = random.choice(QUERIES)
        started = time.perf_counter()
        for busy in range(MAX_BUSY_RETRIES + 1):
            retry_after = self._search_once(name, data, retry_allowed=busy < MAX_BUSY_RETRIES)
            if retry_after is None:
                break
            time.sleep(retry_after)  # gevent's sleep: other users go on meanwhile
        SEARCH_E2E.append([round(1000 * (time.perf_counter() - started), 1), busy])

    def _search_once(self, name: str, data: bytes, *, retry_allowed: bool) -> float | None:
        """One search request; the Retry-After seconds of a busy answer that may be retried, else None."""
        files = {"photo": (name, data, "image/jpeg")}
        with self.client.post(
            "/api/search/", files=files, data={"k": 10}, name="search", catch_response=True
        ) as resp:
            if resp.status_code == 503 and resp.headers.get("Retry-After") and retry_allowed:
                # Reported on a row of its own, so busy answers show in the table and not as searches.
                resp.request_meta["name"] = SEARCH_BUSY
                resp.success()
                return float(resp.headers["Retry-After"])
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:300]}")
            elif "matches" not in resp.json():
                resp.failure("search answer without matches")
            else:
                SEARCH_TOOK.append(float(resp.json()["took_ms"]))
                SEARCH_STAGES.append(resp.json().get("timings", {}))
                server = _server_timing(resp.headers.get("Server-Timing", ""))
                if server is not None:
                    SEARCH_SERVER.append(server)
        return None

    @task(2)
    def listing_page(self) -> None:
        """Open one of the user's listing pages (photos, upload form, duplicate pairs)."""
        self.client.get(f"/listings/{random.choice(self.listings)}/", name="listing page")

    @task(2)
    def job_poll(self) -> None:
        """Poll the last upload's job, as the page does without websockets; no job yet: open a listing."""
        if self.last_job is None:
            self.listing_page()
            return
        with self.client.get(f"/api/jobs/{self.last_job}/", name="job poll", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:300]}")
            elif "is_final" not in resp.json():
                resp.failure("job answer without is_final")
