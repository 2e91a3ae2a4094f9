"""FD-Lite features: GAN tensors become PIL photos for EfficientNet-Lite0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.ml.encoders.registry import encoder_status
from training.ml import fd_features as quality


def test_tensor_to_pil_maps_minus_one_to_black_and_one_to_white() -> None:
    x = torch.stack([torch.full((3, 8, 8), -1.0), torch.full((3, 8, 8), 1.0)])  # (2, 3, 8, 8)
    images = quality.tensor_to_pil(x)
    assert [im.size for im in images] == [(8, 8), (8, 8)] and [im.mode for im in images] == ["RGB", "RGB"]
    assert np.asarray(images[0]).max() == 0 and np.asarray(images[1]).min() == 255


def test_fd_lite_features_come_from_efficientnet_lite0_and_separate_sets() -> None:
    available, reason = encoder_status(quality.FD_ENCODER)
    if not available:
        pytest.skip(reason)
    features = quality.fd_feature_fn("cpu")
    assert features is not None
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(6, 3, 16, 16, generator=g) * 2 - 1  # (6, 3, 16, 16)
    flat = torch.linspace(-1, 1, 6).view(6, 1, 1, 1).expand(6, 3, 16, 16)
    a, b = features(noise), features(flat)
    assert a.shape == (6, 1280) and a.dtype == np.float32
    # The mean term of FD (the full 1280-dim FD costs several large eigendecompositions).
    gap = float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
    assert gap > float(np.linalg.norm(a[:3].mean(axis=0) - a[3:].mean(axis=0)))


def test_fd_lite_is_off_when_the_weights_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "encoder_status", lambda name: (False, "weights missing"))
    assert quality.fd_feature_fn("cpu") is None
