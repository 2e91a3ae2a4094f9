"""Fixtures of the training app tests: a few generated photos (folder and stored), tiny runs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from django.conf import settings

from search.models import Job, Photo
from tests import images
from tests.factories import ListingFactory
from tests.flatsite.jobs.sending import task_send_replace


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The machine is shared; tiny models gain nothing from more threads, and OpenMP barriers on a busy
    # machine make them far slower (also for tests/training/ml).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ids of the training jobs sent to Celery (none runs)."""
    calls: list[int] = []
    task_send_replace(monkeypatch, Job.Kind.TRAIN, calls.append)
    return calls


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of six small generated photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        (folder / f"room{i}.jpg").write_bytes(images.jpeg(100 + i, (64, 48)))
    return folder


def stored_photo(listing: Any, seed: int, room: str = "kitchen") -> Photo:
    """A processed photo row whose normalised image exists under MEDIA_ROOT."""
    data = images.jpeg(seed, (64, 48))
    rel = f"photos/test-{seed}.jpg"
    path = Path(settings.MEDIA_ROOT) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Photo.objects.create(
        listing=listing, uploader=listing.owner, original_name=f"{seed}.jpg", image_path=rel,
        sha256_bytes=hashlib.sha256(data).hexdigest(), status=Photo.Status.PROCESSED, room_tag=room,
        width=64, height=48,
    )  # fmt: skip


@pytest.fixture
def stored_photos(db: Any) -> list[Photo]:
    """Four processed photos: three kitchens and a bedroom."""
    listing = ListingFactory()
    rooms = ["kitchen", "kitchen", "kitchen", "bedroom"]
    return [stored_photo(listing, 200 + i, room) for i, room in enumerate(rooms)]
