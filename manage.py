#!/usr/bin/env python
"""Django's command-line utility for flatsite."""

import os
import sys


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flatsite.settings")
    from django.core.management import execute_from_command_line

    from flatsite.settings_errors import SettingError

    try:
        execute_from_command_line(sys.argv)
    except SettingError as exc:
        # A mistyped setting is the user's to fix: say which, without a traceback through Django's loader.
        sys.stderr.write(f"flatsite: bad setting: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
