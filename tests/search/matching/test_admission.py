"""Search admission: a bounded number of searches at once, a short FIFO queue, 503 busy with Retry-After."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from search.matching import engine as selectors_search
from search.matching import views as views_search
from search.matching.admission import Busy, SearchGate, search_gate, usable_cores
from tests import images


def _hold(gate: SearchGate, started: threading.Event, release: threading.Event) -> None:
    with gate.slot():
        started.set()
        release.wait(5)


def _holder(gate: SearchGate) -> tuple[threading.Thread, threading.Event]:
    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold, args=(gate, started, release))
    thread.start()
    assert started.wait(5)
    return thread, release


def test_gate_admits_up_to_its_slots_at_once() -> None:
    gate = SearchGate(slots=2, queue=0, max_wait_s=0)
    with gate.slot(), gate.slot():
        assert gate.active == 2
        with pytest.raises(Busy):
            gate._enter()
    assert gate.active == 0


def test_full_gate_with_full_queue_answers_busy_at_once_with_a_retry_hint() -> None:
    gate = SearchGate(slots=1, queue=0, max_wait_s=10, initial_service_s=1.5)
    with gate.slot():
        started = time.monotonic()
        with pytest.raises(Busy) as caught:
            gate._enter()
        assert time.monotonic() - started < 1  # did not wait for max_wait_s
    # One search running at 1.5 s plus this one on one slot: about 3 s.
    assert caught.value.retry_after_s == 3
    assert str(caught.value) == "busy, retry in 3 s"


def test_waiter_gets_the_slot_when_the_holder_leaves() -> None:
    gate = SearchGate(slots=1, queue=1, max_wait_s=5)
    thread, release = _holder(gate)
    threading.Timer(0.2, release.set).start()
    with gate.slot():
        assert gate.active == 1 and gate.waiting == 0
    thread.join(5)
    assert gate.active == 0


def test_waiter_gives_up_after_max_wait_and_leaves_the_queue() -> None:
    gate = SearchGate(slots=1, queue=1, max_wait_s=0.2)
    thread, release = _holder(gate)
    started = time.monotonic()
    with pytest.raises(Busy):
        gate._enter()
    assert 0.15 < time.monotonic() - started < 2
    assert gate.waiting == 0 and gate.active == 1
    release.set()
    thread.join(5)
    assert gate.active == 0


def test_waiters_are_served_in_arrival_order() -> None:
    gate = SearchGate(slots=1, queue=3, max_wait_s=5)
    holder, release = _holder(gate)
    order: list[int] = []

    def wait_then_record(i: int) -> None:
        with gate.slot():
            order.append(i)

    waiters = []
    for i in range(3):
        waiters.append(threading.Thread(target=wait_then_record, args=(i,)))
        waiters[-1].start()
        while gate.waiting < i + 1:
            time.sleep(0.01)
    release.set()
    for thread in [holder, *waiters]:
        thread.join(5)
    assert order == [0, 1, 2]
    assert gate.active == 0


def test_slot_is_released_when_the_search_raises() -> None:
    gate = SearchGate(slots=1, queue=0, max_wait_s=0)
    with pytest.raises(RuntimeError), gate.slot():
        raise RuntimeError("search failed")
    assert gate.active == 0
    with gate.slot():
        assert gate.active == 1


def test_gate_is_rebuilt_when_its_settings_change(settings: Any) -> None:
    settings.FLATSITE_SEARCH_SLOTS, settings.FLATSITE_SEARCH_QUEUE = 3, 5
    gate = search_gate()
    assert (gate.slots, gate.queue) == (3, 5)
    assert search_gate() is gate
    settings.FLATSITE_SEARCH_SLOTS = 0  # one slot per two usable cores
    assert search_gate().slots == max(1, usable_cores() // 2) and search_gate() is not gate


@pytest.fixture
def one_slot(settings: Any) -> SearchGate:
    settings.FLATSITE_SEARCH_SLOTS, settings.FLATSITE_SEARCH_QUEUE = 1, 0
    settings.FLATSITE_SEARCH_MAX_WAIT_S = 0
    return search_gate()


def _photo() -> dict[str, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"photo": SimpleUploadedFile("q.jpg", images.jpeg(1), content_type="image/jpeg")}


@pytest.mark.django_db
def test_api_answers_503_busy_with_retry_after_when_every_slot_is_taken(
    one_slot: SearchGate, realtor: Any
) -> None:
    client = Client()
    client.force_login(realtor)
    with one_slot.slot():
        resp = client.post(reverse("api:search"), _photo())
    assert resp.status_code == 503
    retry = int(resp["Retry-After"])
    assert retry >= 1
    assert resp.json()["error"] == f"busy, retry in {retry} s"
    assert one_slot.active == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("module", "url_name"), [(selectors_search, "api:search"), (views_search, "matching:search")]
)
def test_api_and_page_release_their_slot_when_the_search_fails(
    one_slot: SearchGate, realtor: Any, monkeypatch: pytest.MonkeyPatch, module: Any, url_name: str
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("index unreadable")

    monkeypatch.setattr(module, "image_search", broken)
    client = Client()
    client.force_login(realtor)
    with pytest.raises(RuntimeError, match="index unreadable"):
        client.post(reverse(url_name), _photo())
    assert one_slot.active == 0


@pytest.mark.django_db
def test_search_page_answers_503_with_retry_after_when_busy(one_slot: SearchGate, realtor: Any) -> None:
    client = Client()
    client.force_login(realtor)
    with one_slot.slot():
        resp = client.post(reverse("matching:search"), _photo())
    assert resp.status_code == 503
    assert int(resp["Retry-After"]) >= 1
    assert b"search is busy right now" in resp.content


@pytest.mark.django_db
def test_api_search_with_a_non_numeric_k_is_a_clear_400(one_slot: SearchGate, realtor: Any) -> None:
    client = Client()
    client.force_login(realtor)
    resp = client.post(reverse("api:search"), {**_photo(), "k": "ten"})
    assert resp.status_code == 400
    assert "k: must be a whole number" in resp.json()["error"]
    assert one_slot.active == 0


@pytest.mark.django_db
def test_api_search_reports_its_queue_and_decode_time_and_a_server_timing_header(
    one_slot: SearchGate, realtor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(query: Any, **kwargs: Any) -> selectors_search.SearchResult:
        return selectors_search.SearchResult(query.name, [], 12.0, {"global_ms": 5.0})

    monkeypatch.setattr(selectors_search, "image_search", answer)
    client = Client()
    client.force_login(realtor)
    resp = client.post(reverse("api:search"), _photo())
    assert resp.status_code == 200, resp.content
    timings = resp.json()["timings"]
    assert set(timings) == {"global_ms", "queue_ms", "decode_ms"}
    assert timings["queue_ms"] >= 0 and timings["decode_ms"] > 0
    name, _, duration = resp["Server-Timing"].partition(";dur=")
    assert name == "app" and float(duration) >= timings["decode_ms"]
