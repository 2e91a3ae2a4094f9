"""The web launcher: every way of starting web goes through flatsite.web, which caps malloc arenas."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.load import load_test
from flatsite import web
from tests import processes

ROOT = Path(__file__).resolve().parents[2]


def test_web_environment_caps_malloc_arenas() -> None:
    env = web.web_environment({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "MALLOC_ARENA_MAX": "2"}


def test_web_environment_keeps_an_operators_own_arena_setting() -> None:
    assert web.web_environment({"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"


def test_launcher_replaces_itself_with_daphne_on_the_asgi_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(web.os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    web.main(["-b", "127.0.0.1", "-p", "8123"])
    [(path, argv, env)] = calls
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "8123", web.APPLICATION]
    assert env["MALLOC_ARENA_MAX"] == "2"


@pytest.mark.parametrize(
    ("launcher", "line"),
    [
        ("Procfile", "web: .venv/bin/python -m flatsite.web -b 127.0.0.1 -p $PORT"),
        ("docker/entrypoint.sh", 'exec python -m flatsite.web -b 0.0.0.0 -p "${PORT:-8000}" $proxy'),
    ],
)
def test_every_launcher_starts_web_through_the_launcher(launcher: str, line: str) -> None:
    text = (ROOT / launcher).read_text()
    assert line in text
    assert not re.search(r"daphne\s+-", text), "web must not start daphne directly"


def test_test_and_load_test_servers_start_web_through_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def spawn(name: str, argv: list[str], *args: Any) -> Any:
        started.append(argv)
        raise RuntimeError("not started")

    monkeypatch.setattr(processes, "_spawn", spawn)
    with pytest.raises(RuntimeError):
        processes.daphne_server({}, ROOT)
    assert started == [[sys.executable, "-m", "flatsite.web", "-b", "127.0.0.1", "-p", "0"]]
    assert "processes.daphne_server(" in inspect.getsource(load_test)
