"""The web process: `python -m flatsite.web -b HOST -p PORT [daphne options]` runs daphne on flatsite.asgi.

Every launcher (Procfile, the container entrypoint, bench/load/load_test.py and the test servers of
tests/processes.py) starts web through this module, so the environment the process needs from its
first instruction is set in one place. It replaces itself with daphne (same pid, signals go straight
to daphne).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

APPLICATION = "flatsite.asgi:application"
# Django runs each request's sync code in a thread of its own, and glibc gives threads that allocate at
# the same time separate malloc arenas, up to 8 per core; memory freed inside an arena mostly stays
# there. Measured under load (bench/README.md, "Load test"): 16 arenas after two minutes, their free
# space growing to ~470 MB while the memory in use and the Python heap stayed flat. glibc reads this
# variable once, when the process starts, so it must be set before the interpreter runs.
MALLOC_ARENA_MAX = "2"


def web_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The web process's environment: the caller's, with malloc arenas capped unless already set."""
    env = dict(environ)
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    return env


def daphne_argv(options: list[str]) -> list[str]:
    """daphne with the given options, on this interpreter, serving the flatsite ASGI application."""
    return [sys.executable, "-m", "daphne", *options, APPLICATION]


def main(options: list[str] | None = None) -> None:
    """Replace this process with daphne in the web environment."""
    argv = daphne_argv(sys.argv[1:] if options is None else options)
    # This interpreter, running daphne with an argv built here: no shell, nothing from a request.
    os.execve(sys.executable, argv, web_environment(os.environ))  # noqa: S606  # nosec B606


if __name__ == "__main__":
    main()
