"""Content hashes: exact pixel digest and 64-bit perceptual hashes (DCT pHash, gradient dHash)."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image
from scipy.fft import dctn


def pixel_sha256(img: Image.Image) -> str:
    """sha256 over size and RGB pixels: equal for the same picture in any container."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bool(bit))
    return value


def phash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash (32x32 greyscale, top-left 8x8 low frequencies vs their median)."""
    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(grey, norm="ortho")[:8, :8]  # (8, 8)
    return _bits_to_int(low > np.median(low))


def dhash(img: Image.Image) -> int:
    """64-bit difference hash (9x8 greyscale, left-to-right gradient signs)."""
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits_to_int(grey[:, 1:] > grey[:, :-1])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()
