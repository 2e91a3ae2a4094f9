"""Create the role groups and a first admin (from FLATSITE_ADMIN_USER / FLATSITE_ADMIN_PASSWORD)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from flatsite.core import accounts


class Command(BaseCommand):
    help = "Create role groups (realtor, moderator, admin) and the first admin account."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = accounts.roles_setup()
        self.stdout.write("roles: " + ", ".join(f"{k} ({v} permissions)" for k, v in counts.items()))
        username = settings.FLATSITE_ADMIN_USER
        user, generated = accounts.admin_ensure(username, settings.FLATSITE_ADMIN_PASSWORD or None)
        if generated:
            self.stdout.write(
                self.style.WARNING(f"created admin '{user.get_username()}' password: {generated}")
            )
            self.stdout.write("(set FLATSITE_ADMIN_USER / FLATSITE_ADMIN_PASSWORD to choose them)")
        else:
            self.stdout.write(f"admin account: {user.get_username()}")
