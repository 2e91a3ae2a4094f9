"""Fault injection for the fault-tolerance tests; inert unless FLATSITE_TEST_FAULTS is set.

FLATSITE_TEST_FAULTS holds comma-separated ``key=value`` pairs, read from settings in this one place:

- ``kill_on_photo=NAME``: a worker about to decode the photo uploaded as NAME kills itself with SIGKILL,
  as the kernel's out-of-memory killer would (tests/integration/test_poison_and_redelivery.py).
- ``slow_photo_s=SECONDS``: sleep before decoding each photo, so a task outlives the broker's
  visibility timeout (same test module).

Production never sets it; unknown keys are refused so a typo cannot silently disable a test.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Faults:
    """The faults to inject (the defaults inject none)."""

    kill_on_photo: str = ""
    slow_photo_s: float = 0.0


@functools.cache
def _parse(spec: str) -> Faults:
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in Faults.__dataclass_fields__:
            raise ValueError(f"FLATSITE_TEST_FAULTS: unknown fault {part!r}")
        values[key] = value
    faults = Faults(
        kill_on_photo=values.get("kill_on_photo", ""), slow_photo_s=float(values.get("slow_photo_s", 0))
    )
    if faults != Faults():
        log.warning("fault injection active: %s", faults)
    return faults


def active() -> Faults:
    """The faults configured for this process."""
    return _parse(settings.FLATSITE_TEST_FAULTS)


def photo_decode_starting(name: str) -> None:
    """Called just before a worker decodes an uploaded photo (after its attempt was counted)."""
    faults = active()
    if faults.slow_photo_s:
        time.sleep(faults.slow_photo_s)
    if faults.kill_on_photo and name == faults.kill_on_photo:
        os.kill(os.getpid(), signal.SIGKILL)
