"""Test settings: in-memory channel layer, eager Celery in unit tests, data under a temp folder."""

import os
import tempfile

os.environ.setdefault("CHANNEL_BACKEND", "memory")
os.environ.setdefault("FLATSITE_ALLOW_DEV_KEY", "1")
# Always a fresh folder: concurrent runs must not share a SQLite test database or media.
os.environ["FLATSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="flatsite-test-")

from flatsite.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
