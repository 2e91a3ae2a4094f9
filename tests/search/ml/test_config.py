"""The one config convention (search.ml.config) on every config stored with a run or an index version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from search.ml.clusters.model import ClusterConfig
from search.ml.clusters.model import config_from_dict as cluster_from_dict
from search.ml.clusters.model import config_to_dict as cluster_to_dict
from search.ml.config import config_from_dict, config_to_dict
from search.ml.index.config import IndexConfig
from search.ml.match.levels import LevelThresholds
from training.ml.config import GanConfig
from training.ml.config import config_from_dict as gan_from_dict
from training.ml.config import config_to_dict as gan_to_dict

STORED = [
    IndexConfig(dim=3, hnsw_m=16, centre=(0.5, -0.25, 1.0), centre_count=7),
    ClusterConfig(pca_dim=10, min_samples=5, fit_sample=None, outlier_z=None),
    LevelThresholds(same_room_min_inliers=40, similar_min_score=0.5),
    GanConfig(latent_dim=32, betas=(0.1, 0.9), data={"source": "photos", "ids": [1, 2]}),
]


@pytest.mark.parametrize("cfg", STORED, ids=lambda c: type(c).__name__)
def test_every_stored_config_round_trips_through_json(cfg: Any) -> None:
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(type(cfg), data) == cfg


@pytest.mark.parametrize("cfg", STORED, ids=lambda c: type(c).__name__)
def test_unknown_keys_are_refused_by_name(cfg: Any) -> None:
    with pytest.raises(ValueError, match=f"unknown {type(cfg).__name__} fields: bogus, typo_field"):
        config_from_dict(type(cfg), {**config_to_dict(cfg), "typo_field": 1, "bogus": 2})


def test_the_per_class_entry_points_use_the_same_convention() -> None:
    index, cluster, levels, gan = STORED
    assert index.to_dict() == config_to_dict(index)
    assert IndexConfig.from_dict(index.to_dict()) == index
    assert cluster_to_dict(cluster) == config_to_dict(cluster)
    assert cluster_from_dict(cluster_to_dict(cluster)) == cluster
    assert levels.to_dict() == config_to_dict(levels)
    assert LevelThresholds.from_dict(levels.to_dict()) == levels
    assert gan_to_dict(gan) == config_to_dict(gan)
    assert gan_from_dict(gan_to_dict(gan)) == gan


def test_tuples_are_stored_as_lists_and_come_back_as_tuples() -> None:
    gan = GanConfig(betas=(0.1, 0.9), encoder_betas=(0.5, 0.999))
    data = gan_to_dict(gan)
    assert data["betas"] == [0.1, 0.9] and data["encoder_betas"] == [0.5, 0.999]
    back = gan_from_dict(json.loads(json.dumps(data)))
    assert back.betas == (0.1, 0.9) and back.encoder_betas == (0.5, 0.999)
    assert IndexConfig.from_dict({"dim": 2, "centre": [1.0, 2.0]}).centre == (1.0, 2.0)


def test_an_index_header_in_todays_format_loads() -> None:
    # What VectorIndex.save_to wrote before the convention: dataclasses.asdict, through JSON.
    header = {
        "dim": 3, "exact_threshold": 50000, "hnsw_m": 32, "ef_construction": 80, "ef_search": 128,
        "tombstone_rebuild_fraction": 0.2, "norm_tolerance": 0.001, "centre": [0.1, 0.2, 0.3],
        "centre_count": 4,
    }  # fmt: skip
    assert IndexConfig.from_dict(header) == IndexConfig(dim=3, centre=(0.1, 0.2, 0.3), centre_count=4)
    assert IndexConfig.from_dict({"dim": 3}) == IndexConfig(dim=3)  # written before centring existed


def test_a_cluster_run_and_a_gan_run_in_todays_format_load() -> None:
    old_run = {"pca_dim": 50, "umap_dim": 5, "min_cluster_size": 20, "seed": 3}  # an early run, fewer keys
    assert cluster_from_dict(old_run) == ClusterConfig(seed=3)
    old_gan = {"seed": 1, "latent_dim": 16, "betas": [0.0, 0.99], "encoder_betas": [0.9, 0.99], "data": {}}
    assert gan_from_dict(old_gan) == GanConfig(seed=1, latent_dim=16)
    assert LevelThresholds.from_dict({"edited_min_inliers": 12}) == LevelThresholds(edited_min_inliers=12)


@dataclass(frozen=True)
class _Inner:
    size: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    sizes: tuple[int, ...] | None = None


def test_nested_configs_and_optional_tuples_round_trip() -> None:
    cfg = _Outer(inner=_Inner(size=(3, 4)), sizes=(5, 6, 7))
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert data == {"inner": {"size": [3, 4]}, "sizes": [5, 6, 7]}
    assert config_from_dict(_Outer, data) == cfg
    with pytest.raises(ValueError, match="unknown _Inner fields: extra"):
        config_from_dict(_Outer, {"inner": {"size": [1, 1], "extra": 0}})


def test_retired_keys_are_dropped_so_runs_saved_before_a_field_was_removed_load() -> None:
    old = {"size": [2, 2], "old_knob": 1}
    assert config_from_dict(_Inner, old, retired={"old_knob"}) == _Inner(size=(2, 2))


def test_a_stored_value_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(ValueError, match="IndexConfig must be a dict"):
        config_from_dict(IndexConfig, [3])  # type: ignore[arg-type]
