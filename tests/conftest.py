"""Fixtures shared by the whole suite."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.factories import ListingFactory, UserFactory


@pytest.fixture(autouse=True)
def _data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Give every Django-using test its own data folder so files never leak between tests."""
    if "settings" not in request.fixturenames and not _uses_django(request):
        return
    settings = request.getfixturevalue("settings")
    root = tmp_path / "data"
    settings.DATA_DIR = root
    settings.MEDIA_ROOT = root / "media"
    settings.PRIVATE_ROOT = root / "private"
    settings.INDEX_ROOT = root / "index"
    settings.CHECKPOINT_ROOT = root / "checkpoints"
    settings.STAGING_ROOT = root / "staging"


def _uses_django(request: pytest.FixtureRequest) -> bool:
    names = set(request.fixturenames)
    return bool(names & {"db", "transactional_db", "client", "admin_client", "django_db_setup"}) or bool(
        request.node.get_closest_marker("django_db")
    )


@pytest.fixture
def realtor(db: Any) -> Any:
    return UserFactory(role="realtor")


@pytest.fixture
def other_realtor(db: Any) -> Any:
    return UserFactory(role="realtor")


@pytest.fixture
def moderator(db: Any) -> Any:
    return UserFactory(role="moderator")


@pytest.fixture
def admin_user(db: Any) -> Any:
    return UserFactory(role="admin")


@pytest.fixture
def listing(realtor: Any) -> Any:
    return ListingFactory(owner=realtor)


def upload(name: str, data: bytes) -> tuple[str, io.BytesIO]:
    """An (name, stream) item as the ingest service takes it."""
    return name, io.BytesIO(data)
