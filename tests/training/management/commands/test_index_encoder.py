"""index_encoder: register a run's encoder, extract every stored photo with it and build its index."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from search.listings.selectors import features_matrix
from search.ml.encoders.registry import unregister_encoder
from search.models import Feature, IndexVersion
from training import job as runner
from training import services

pytestmark = pytest.mark.django_db


def test_inline_indexing_stores_a_feature_per_photo_and_a_live_index(
    photo_dir: Path, stored_photos: list[Any]
) -> None:
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)
    assert run.job_id is not None
    runner.job_run_inline(run.job_id, device="cpu")
    out = io.StringIO()
    call_command("index_encoder", str(run.pk), "--inline", stdout=out)
    name = f"gan-run-{run.pk}-step-15"
    assert f"encoder: {name}; photos extracted: 4" in out.getvalue()
    assert Feature.objects.filter(encoder=name).count() == 4
    ids, vectors = features_matrix(name)
    assert sorted(ids.tolist()) == sorted(p.pk for p in stored_photos) and vectors.shape == (4, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    live = IndexVersion.objects.get(encoder=name, status=IndexVersion.Status.LIVE)
    assert live.count == 4 and f"index: {live}" in out.getvalue()
    unregister_encoder(name)


def test_a_run_without_checkpoint_or_an_unknown_run_is_refused(photo_dir: Path) -> None:
    run = services.run_start(preset="tiny-test", data=services.data_choice_folder(photo_dir), enqueue=False)
    with pytest.raises(CommandError, match="no checkpoint yet"):
        call_command("index_encoder", str(run.pk), "--inline", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no training run #424242"):
        call_command("index_encoder", "424242", stdout=io.StringIO())
