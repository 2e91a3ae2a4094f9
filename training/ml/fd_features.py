"""FD-Lite: generated and real photos compared in the EfficientNet-Lite feature space (not FID)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from search.ml.encoders.registry import encoder_status, load_encoder
from training.ml.data import tensor_to_uint8

log = logging.getLogger(__name__)
FD_ENCODER = "effnet-lite0"

FeatureFn = Callable[[torch.Tensor], np.ndarray]


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) float in [-1, 1] -> N RGB PIL images."""
    return [Image.fromarray(arr) for arr in tensor_to_uint8(images)]  # each (H, W, 3) uint8


def fd_feature_fn(device: torch.device | str | None = None) -> FeatureFn | None:
    """The feature map for FD-Lite, or None (logged) when the EfficientNet-Lite weights are missing."""
    available, reason = encoder_status(FD_ENCODER)
    if not available:
        log.warning("FD-Lite is off: %s", reason)
        return None
    encoder = load_encoder(FD_ENCODER, device)

    def features(images: torch.Tensor) -> np.ndarray:
        return encoder.embed_images(tensor_to_pil(images))  # (N, 1280)

    return features
