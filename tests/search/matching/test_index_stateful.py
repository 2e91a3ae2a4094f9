"""Any sequence of add / delete / relabel / rebuild / crash / reconcile keeps search honest (Hypothesis)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image

from search.listings import selectors
from search.listings.selectors import features_matrix
from search.matching import engine as selectors_search
from search.matching import index as index_service
from search.matching.engine import QueryImage, image_search
from search.models import IndexVersion, Listing, Photo
from tests.factories import ListingFactory, UserFactory
from tests.search.matching.index_rows import DIM, ENCODER, photo_with_feature, unit_vector

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(240)]


class FakeEncoder:
    """Stands in for the search encoder: the query "image" embeds to whatever vector the test set."""

    def __init__(self) -> None:
        self.query = unit_vector(0)

    def embed_images(self, images: list[Any], **_: Any) -> np.ndarray:
        return np.stack([self.query] * len(images))  # (N, DIM)


class IndexLifecycle(RuleBasedStateMachine):
    """The database is the truth; the index file may lag, crash or rot, and search must still only show
    photos that exist and that the searcher may see."""

    # Set by the test before the machine runs (pytest fixtures are not reachable from here).
    index_base: Path
    django_settings: Any
    encoder: FakeEncoder
    searchers: list[Any]
    owners: list[Any]

    def __init__(self) -> None:
        super().__init__()
        self.django_settings.INDEX_ROOT = self.index_base / uuid.uuid4().hex  # a fresh store per example
        index_service._cache.clear()
        Photo.objects.all().delete()
        IndexVersion.objects.all().delete()
        self.listings = [ListingFactory(owner=owner) for owner in self.owners]
        self.deleted: dict[int, np.ndarray] = {}  # id -> its vector, still maybe in a stale index
        self.vectors: dict[int, np.ndarray] = {}
        self.seed = 0

    def live_ids(self) -> list[int]:
        return sorted(int(i) for i in features_matrix(ENCODER)[0])

    # ---- what users and workers do ---------------------------------------------------------------
    @rule(listing=st.integers(0, 1), crash=st.booleans())
    def add_photo(self, listing: int, crash: bool) -> None:
        self.seed += 1
        photo, vec = photo_with_feature(self.listings[listing], 1000 + self.seed)
        self.vectors[photo.pk] = vec
        if not crash:  # crash: the feature row is committed, the process dies before the index write
            index_service.index_add(ENCODER, np.array([photo.pk]), vec[None, :])

    @precondition(lambda self: bool(self.vectors))
    @rule(data=st.data(), crash=st.booleans())
    def delete_photo(self, data: st.DataObject, crash: bool) -> None:
        photo_id = data.draw(st.sampled_from(sorted(self.vectors)))
        Photo.objects.filter(pk=photo_id).delete()  # its feature row goes with it
        self.deleted[photo_id] = self.vectors.pop(photo_id)
        if not crash:
            index_service.index_remove(ENCODER, [photo_id])

    @rule(listing=st.integers(0, 1), owner=st.integers(0, 1))
    def relabel(self, listing: int, owner: int) -> None:
        """Hand a listing to another realtor: what decides who sees it on listing pages."""
        Listing.objects.filter(pk=self.listings[listing].pk).update(owner=self.owners[owner])

    @precondition(lambda self: bool(self.vectors))
    @rule()
    def rebuild(self) -> None:
        index_service.index_rebuild(ENCODER)

    @rule(how=st.sampled_from(["truncate", "flip_byte"]))
    def rot_live_file(self, how: str) -> None:
        """A crash mid-write on a filesystem that lies about fsync, or a bad disk block."""
        row = IndexVersion.objects.filter(encoder=ENCODER, status=IndexVersion.Status.LIVE).first()
        if row is None:
            return
        path = Path(row.path)
        data = path.read_bytes()
        broken = (
            data[: len(data) // 2] if how == "truncate" else data[:-64] + bytes([data[-64] ^ 1]) + data[-63:]
        )
        path.write_bytes(broken)
        index_service._cache.clear()  # a process started after the damage (others keep their copy)

    @rule()
    def reconcile(self) -> None:
        index_service.index_reconcile(ENCODER)
        live = self.live_ids()
        index = index_service.index_for_search(ENCODER)
        if not live:
            assert index is None or len(index) == 0
            return
        assert index is not None
        assert sorted(index.ids().tolist()) == live == sorted(self.vectors)
        # And the index serves them: every live photo is found by its own vector.
        for photo_id in live[:3]:
            assert photo_id in self.search_ids(self.vectors[photo_id])

    # ---- what must always hold -------------------------------------------------------------------
    def search_ids(self, vector: np.ndarray) -> list[int]:
        self.encoder.query = vector
        query = QueryImage(Image.new("RGB", (32, 32), "gray"), "0" * 64, 0, "query.jpg")
        return [row.photo.pk for row in image_search(query, k=50).matches]

    @invariant()
    def search_shows_only_existing_photos_the_searcher_may_see(self) -> None:
        # The vectors of deleted photos are the likeliest to come back from a stale index.
        probes = [*list(self.deleted.values())[-2:], *list(self.vectors.values())[-1:]]
        for vector in probes:
            found = self.search_ids(vector)
            assert not set(found) & set(self.deleted), "search returned a deleted photo"
            existing = set(Photo.objects.filter(pk__in=found).values_list("pk", flat=True))
            assert existing == set(found)
            for searcher in self.searchers:  # what a search showed, its searcher may then open
                assert all(selectors.photo_viewable(searcher, pid, found) is not None for pid in found)


def test_index_and_search_survive_any_sequence_of_changes_and_crashes(
    settings_fixture: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_fixture.FLATSITE_SEARCH_ENCODER = ENCODER
    encoder = FakeEncoder()
    monkeypatch.setattr(selectors_search, "load_encoder", lambda name: encoder)
    owners = [UserFactory(role="realtor"), UserFactory(role="realtor")]
    machine = type(
        "Machine",
        (IndexLifecycle,),
        {
            "index_base": tmp_path / "index",
            "django_settings": settings_fixture,
            "encoder": encoder,
            "owners": owners,
            "searchers": [*owners, UserFactory(role="moderator"), UserFactory(role="admin")],
        },
    )
    assert encoder.query.size == DIM
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            # No explain phase: its line tracing through Django makes a failure take minutes to report.
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            database=None,  # no example database in the tree; failures print their steps
        ),
    )


@pytest.fixture
def settings_fixture(settings: Any) -> Any:
    return settings
