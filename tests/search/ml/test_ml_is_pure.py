"""The ml packages stay pure Python: importing every search.ml / training.ml module loads no web framework."""

from __future__ import annotations

import subprocess
import sys

from tests.shared_data import REPO_ROOT

FORBIDDEN = ("django", "celery", "channels", "channels_redis", "rest_framework", "flatsite")


def ml_modules() -> list[str]:
    """Dotted names of every module under search/ml and training/ml (globbed, so it grows with the tree)."""
    names = ["search.ml", "search.ml.encoders.registry"]
    for package in ("search/ml", "training/ml"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return list(dict.fromkeys(names))


def test_ml_modules_import_without_django_celery_or_channels() -> None:
    modules = ml_modules()
    assert "search.ml.encoders.registry" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "assert not bad, f'ml modules pulled in: {bad}'\n"
    )
    # A fresh interpreter: in this one pytest-django has already imported Django.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
