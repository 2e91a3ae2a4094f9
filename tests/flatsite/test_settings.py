"""Settings: one typed reading of the environment; a first run leaves a working configuration behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from flatsite import settings
from flatsite.settings_errors import SettingError

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "bin" / "_lib.sh"


def _bare_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A new shell's environment: no DEBUG, no SECRET_KEY, no test-only development key."""
    dropped = ("DEBUG", "SECRET_KEY", "FLATSITE_ALLOW_DEV_KEY", "DJANGO_SETTINGS_MODULE", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(FLATSITE_DATA_DIR=str(data_dir), **extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _bash(env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source {LIB}; {script}"], env=env, capture_output=True, text=True, timeout=60
    )


def test_manage_commands_work_in_a_new_shell_after_the_first_run_wrote_a_secret(tmp_path: Path) -> None:
    env = _bare_env(tmp_path)
    assert _bash(env, "ensure_secret_key").returncode == 0
    key_file = tmp_path / "secret_key"
    assert len(key_file.read_text().strip()) >= 50
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    result = _manage(env, "check")
    assert result.returncode == 0, result.stderr
    assert "SECRET_KEY" not in result.stderr


def test_the_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    env = _bare_env(tmp_path)
    _bash(env, "ensure_secret_key")
    first = (tmp_path / "secret_key").read_text()
    _bash(env, "ensure_secret_key")
    assert (tmp_path / "secret_key").read_text() == first


def test_without_a_key_and_with_debug_off_start_up_is_refused_with_a_message(tmp_path: Path) -> None:
    result = _manage(_bare_env(tmp_path), "check")
    assert result.returncode == 2
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "Traceback" not in result.stderr


def test_bin_up_leaves_debug_off_and_cookies_usable_over_plain_http(tmp_path: Path) -> None:
    result = _bash(_bare_env(tmp_path), 'up_environment; echo "debug=${DEBUG:-unset} secure=$SECURE_COOKIES"')
    assert result.stdout.strip() == "debug=unset secure=0"


def test_bin_up_keeps_an_explicit_debug_setting(tmp_path: Path) -> None:
    result = _bash(_bare_env(tmp_path, DEBUG="1"), 'up_environment; echo "debug=$DEBUG"')
    assert result.stdout.strip() == "debug=1"


def test_the_first_install_prints_a_few_lines_not_pips_chatter() -> None:
    # ensure_venv sends pip's output to a log; what the user sees is the say() lines around it.
    body = LIB.read_text().split("ensure_venv() {", 1)[1].split("\n}\n", 1)[0]
    pip_lines = [line for line in body.splitlines() if "pip install" in line]
    assert pip_lines and all('>"$log" 2>&1' in line for line in pip_lines)


@pytest.mark.parametrize(
    ("name", "raw", "reader"),
    [
        ("DEBUG", "ture", lambda: settings.env_bool("DEBUG", False)),
        ("FLATSITE_SEARCH_SLOTS", "two", lambda: settings.env_int("FLATSITE_SEARCH_SLOTS", 0)),
        ("FLATSITE_DECODE_TIMEOUT_S", "20s", lambda: settings.env_float("FLATSITE_DECODE_TIMEOUT_S", 20)),
        ("FLATSITE_MATCH_THRESHOLDS", "{edited: 3}", lambda: settings.env_json("FLATSITE_MATCH_THRESHOLDS")),
    ],
)
def test_a_mistyped_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, reader: Callable[[], object]
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingError, match=name):
        reader()


def test_a_mistyped_boolean_stops_manage_py_with_one_line(tmp_path: Path) -> None:
    result = _manage(_bare_env(tmp_path, DEBUG="ture"), "check")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "flatsite: bad setting: DEBUG='ture' is not a boolean (use 1/0, true/false, yes/no or on/off)"
    )


def test_booleans_accept_the_usual_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    spellings = [("1", True), ("Yes", True), ("on", True), ("0", False), ("false", False), ("", False)]
    for raw, expected in spellings:
        monkeypatch.setenv("FLATSITE_X", raw)
        assert settings.env_bool("FLATSITE_X", not expected) is expected


def test_faiss_loader_messages_are_not_logged_at_start_up(tmp_path: Path) -> None:
    env = _bare_env(tmp_path, DEBUG="1")
    result = _manage(env, "shell", "-c", "import faiss")
    assert result.returncode == 0, result.stderr
    assert "Could not load library" not in result.stderr + result.stdout
    assert "Loading faiss" not in result.stderr + result.stdout
