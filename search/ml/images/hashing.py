"""Exact-copy keys and 64-bit perceptual hashes (pHash, dHash) of photos."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from PIL import Image

HASH_BITS = 64
_SIGN_BIT = 1 << (HASH_BITS - 1)
_MASK = (1 << HASH_BITS) - 1


def pixel_sha256(img: Image.Image) -> str:
    """sha256 over the size and RGB pixels: the exact-copy key (same picture in any container)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    # Same layout as search.ml.images.normalise.pixel_digest, so stored digests and query digests agree.
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _grey(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    grey = img.convert("L").resize(size, Image.Resampling.LANCZOS)
    return np.asarray(grey, dtype=np.float32)  # (H, W)


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bool(bit))
    return value


def phash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash: low 8x8 DCT coefficients of a 32x32 grey copy against their median."""
    coeffs = cv2.dct(_grey(img, (32, 32)))[:8, :8]  # (8, 8)
    return _bits_to_int(coeffs > np.median(coeffs))


def dhash(img: Image.Image) -> int:
    """64-bit difference hash: sign of the horizontal gradient on a 9x8 grey copy."""
    grey = _grey(img, (9, 8))  # (8, 9)
    return _bits_to_int(grey[:, 1:] > grey[:, :-1])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned form)."""
    return ((a ^ b) & _MASK).bit_count()


def to_signed64(value: int) -> int:
    """Map an unsigned 64-bit hash to the signed range a database BIGINT column holds."""
    value &= _MASK
    return value - (1 << HASH_BITS) if value & _SIGN_BIT else value


def to_unsigned64(value: int) -> int:
    """Inverse of to_signed64."""
    return value & _MASK
