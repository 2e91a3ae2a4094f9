"""Create a user with one role: python manage.py create_user NAME --role realtor [--password P]."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from flatsite.core import accounts, roles


class Command(BaseCommand):
    help = "Create a realtor, moderator or admin account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=roles.ROLES, required=True)
        parser.add_argument("--password", default=None, help="generated and printed when omitted")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(12)
        try:
            user = accounts.user_create(
                username=options["username"], password=password, role=options["role"], email=options["email"]
            )
        except IntegrityError as exc:
            raise CommandError(f"user {options['username']!r} already exists") from exc
        shown = "" if options["password"] else f" password: {password}"
        self.stdout.write(f"created {options['role']} '{user.get_username()}'{shown}")
