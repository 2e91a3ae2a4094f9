"""Role groups and the first admin account."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from flatsite.core import roles


def roles_setup() -> dict[str, int]:
    """Create (or refresh) the three role groups with their permissions; returns perms per group."""
    counts: dict[str, int] = {}
    with transaction.atomic():
        for role, codenames in roles.ROLE_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=role)
            perms = list(Permission.objects.filter(content_type__app_label="search", codename__in=codenames))
            missing = set(codenames) - {p.codename for p in perms}
            if missing:
                raise RuntimeError(f"permissions missing (run migrate first): {sorted(missing)}")
            group.permissions.set(perms)
            counts[role] = len(perms)
    return counts


def user_create(*, username: str, password: str | None, role: str, email: str = "") -> Any:
    """Create a user in one role group (admins are also Django superusers)."""
    if role not in roles.ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(roles.ROLES)}")
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.create_user(username=username, email=email, password=password)
        if role == roles.ADMIN:
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        user.groups.add(Group.objects.get(name=role))
    return user


def admin_ensure(username: str, password: str | None) -> tuple[Any, str | None]:
    """Create the first admin if no admin exists; returns (user, generated password or None)."""
    user_model = get_user_model()
    existing = user_model.objects.filter(groups__name=roles.ADMIN).order_by("pk").first()
    if existing is not None:
        return existing, None
    generated = None if password else secrets.token_urlsafe(12)
    user = user_create(username=username, password=password or generated, role=roles.ADMIN)
    return user, generated
