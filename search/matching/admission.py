"""Admission control for searches: a few run at once per web process, a short queue waits, the rest are busy.

A search is CPU-bound (decode, embedding, SIFT verification). Admitting every request lets dozens of
request threads share the cores, so each one takes as long as all of them together, every one holds its
decoded image and buffers at once (the web process's peak memory), and latency grows without bound
under overload. The gate runs at most `slots` searches at once and lets up to `queue` more wait in
arrival order, each for at most `max_wait_s`; the rest, and waiters whose time runs out, get Busy, whose
`retry_after_s` estimates from a moving average of search time when the work ahead should be done
(HTTP 503 with Retry-After).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

_SMOOTHING = 0.2  # weight of the newest search in the moving average of search time


class Busy(Exception):
    """Every search slot is taken and the queue is full (or the wait ran out)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"busy, retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class SearchGate:
    """At most `slots` holders at once; FIFO waiters up to `queue`, each for at most `max_wait_s`."""

    def __init__(self, slots: int, queue: int, max_wait_s: float, *, initial_service_s: float = 0.5) -> None:
        if slots < 1 or queue < 0 or max_wait_s < 0:
            raise ValueError("slots >= 1, queue >= 0 and max_wait_s >= 0 please")
        self.slots, self.queue, self.max_wait_s = slots, queue, max_wait_s
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[threading.Event] = deque()
        self._service_s = initial_service_s

    @property
    def active(self) -> int:
        """Searches holding a slot now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Searches waiting for a slot now."""
        return len(self._waiters)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the body (raises Busy instead of waiting too long); released on any exit."""
        self._enter()
        started = time.monotonic()
        try:
            yield
        finally:
            self._leave(time.monotonic() - started)

    def retry_after_s(self) -> int:
        """Whole seconds until the queue ahead of a new request should have drained (at least 1)."""
        ahead = self._active + len(self._waiters) + 1
        return max(1, math.ceil(ahead * self._service_s / self.slots))

    def _enter(self) -> None:
        with self._lock:
            if self._active < self.slots and not self._waiters:
                self._active += 1
                return
            # No refusal on a predicted wait: measured under overload (bench/README.md, "Load test"),
            # early refusals sent clients back into retry storms; waiting in this FIFO queue did better.
            if len(self._waiters) >= self.queue or self.max_wait_s == 0:
                raise Busy(self.retry_after_s())
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(self.max_wait_s):
            return  # _leave handed its slot straight to this waiter
        with self._lock:
            if turn.is_set():  # handed over just as the wait ran out: the slot is ours
                return
            self._waiters.remove(turn)
            raise Busy(self.retry_after_s())

    def _leave(self, held_s: float) -> None:
        with self._lock:
            self._service_s += _SMOOTHING * (held_s - self._service_s)
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes on; _active stays the same
            else:
                self._active -= 1


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_slots() -> int:
    """One search at a time per two usable cores."""
    # A search runs its SIFT, embeddings and verification on threads side by side: one alone keeps two
    # cores busy, and two at once only slow each other down (bench/README.md, "Load test").
    return max(1, usable_cores() // 2)


_gate: tuple[tuple[int, int, float], SearchGate] | None = None
_gate_lock = threading.Lock()


def search_gate() -> SearchGate:
    """This process's gate, sized from settings (a new one when those settings change, as in tests)."""
    global _gate
    slots = settings.FLATSITE_SEARCH_SLOTS or default_slots()
    key = (slots, settings.FLATSITE_SEARCH_QUEUE, settings.FLATSITE_SEARCH_MAX_WAIT_S)
    with _gate_lock:
        if _gate is None or _gate[0] != key:
            _gate = (key, SearchGate(*key))
        return _gate[1]
