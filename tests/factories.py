"""Factories for database rows used across tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from flatsite.core import accounts
from search.models import Listing


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        if not create or not extracted:
            return
        accounts.roles_setup()
        self.groups.add(Group.objects.get(name=extracted))
        if extracted == "admin":
            self.is_staff = self.is_superuser = True
        self.save()


class ListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Listing

    title = factory.Sequence(lambda n: f"Flat {n}")
    owner = factory.SubFactory(UserFactory, role="realtor")
