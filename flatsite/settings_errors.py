"""The error a bad setting raises at start-up (its own module: manage.py catches it before settings load)."""


class SettingError(Exception):
    """A setting in the environment that cannot be parsed or is missing: names the variable."""
