"""The isolated decoder: same result as in-process, and a crash, timeout or memory blow-up fails one file."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.ml.images import safe_decode
from search.ml.images.normalise import ImageLimits, ImageRejected, normalise
from search.ml.images.safe_decode import ChildLimits, DecodeAborted, DecoderProcess, normalise_isolated
from tests import images


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x4000 photo-like JPEG: 16 M pixels to decode, resample and hash."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).resize((4000, 4000))
    return _write(tmp_path_factory.mktemp("big"), "big.jpg", images.encode(img, "JPEG", quality=80))


def test_isolated_result_equals_the_in_process_result(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jpg", images.jpeg_with_exif(1))
    here, there = normalise(path, "a.jpg"), normalise_isolated(path, "a.jpg")
    assert (there.width, there.height, there.sha256_pixels, there.phash) == (
        here.width,
        here.height,
        here.sha256_pixels,
        here.phash,
    )
    assert there.jpeg == here.jpeg and there.thumbnail == here.thumbnail
    assert there.image.tobytes() == here.image.tobytes()


def test_without_pixels_the_image_is_the_normalised_jpeg(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.png", images.png(2))
    result = normalise_isolated(path, "a.png", with_image=False)
    assert result.image.format == "JPEG" and result.image.size == (result.width, result.height)


def test_without_derivatives_no_jpeg_is_encoded_and_the_pixels_and_hashes_are_the_same(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "a.jpg", images.jpeg_with_exif(6))
    full = normalise_isolated(path, "a.jpg")
    bare = normalise_isolated(path, "a.jpg", derivatives=False)
    assert bare.jpeg == b"" and bare.thumbnail == b""
    assert (bare.width, bare.height, bare.sha256_pixels, bare.phash) == (
        full.width,
        full.height,
        full.sha256_pixels,
        full.phash,
    )
    assert bare.image.tobytes() == full.image.tobytes()
    in_process = normalise(path, "a.jpg", derivatives=False)
    assert in_process.jpeg == b"" and in_process.sha256_pixels == full.sha256_pixels


def test_asking_for_neither_pixels_nor_derivatives_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.png", images.png(2))
    with pytest.raises(ValueError, match="pixels, the derivatives or both"):
        normalise_isolated(path, "a.png", with_image=False, derivatives=False)


def test_rejections_keep_their_reason(tmp_path: Path) -> None:
    data = images.jpeg(3, size=(640, 480))
    path = _write(tmp_path, "cut.jpg", data[: len(data) // 2])
    with pytest.raises(ImageRejected, match=r"truncated|corrupt"):
        normalise_isolated(path, "cut.jpg")


def test_decoder_that_crashes_fails_only_its_file(tmp_path: Path, big_jpeg: Path) -> None:
    decoder = DecoderProcess(ChildLimits())
    # What a memory-corruption bug in a codec looks like, arriving while the file is being decoded.
    crash = threading.Timer(0.1, decoder.proc.send_signal, (signal.SIGSEGV,))
    crash.start()
    with pytest.raises(DecodeAborted, match="crashed the decoder \\(SIGSEGV\\)") as caught:
        decoder.normalise(big_jpeg, "big.jpg", ImageLimits(), with_image=False)
    crash.join()
    assert caught.value.kind == "crashed"
    path = _write(tmp_path, "a.jpg", images.jpeg(4))
    assert normalise_isolated(path, "a.jpg").width == 320  # the next file gets a fresh decoder


def test_decoder_that_died_while_idle_is_replaced_without_failing_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "a.jpg", images.jpeg(4))
    normalise_isolated(path, "a.jpg")
    for decoder in safe_decode._POOL.idle:
        decoder.proc.kill()
        decoder.proc.wait()
    # It dies between the pool's liveness check and the request: the file must not pay for it.
    monkeypatch.setattr(DecoderProcess, "alive", property(lambda self: True))
    assert normalise_isolated(path, "a.jpg").width == 320


def test_decoder_running_out_of_memory_is_a_clean_rejection(tmp_path: Path, big_jpeg: Path) -> None:
    with pytest.raises(DecodeAborted, match="more than 40 MB") as caught:
        normalise_isolated(big_jpeg, "big.jpg", child=ChildLimits(memory_mb=40))
    assert caught.value.kind == "memory"
    small = _write(tmp_path, "a.jpg", images.jpeg(5))
    assert normalise_isolated(small, "a.jpg", child=ChildLimits(memory_mb=40)).width == 320


def test_decoder_over_its_time_limit_is_killed(tmp_path: Path, big_jpeg: Path) -> None:
    limits = ChildLimits(timeout_s=0.05)
    with pytest.raises(DecodeAborted, match=r"longer than 0\.05 s") as caught:
        normalise_isolated(big_jpeg, "big.jpg", child=limits)
    assert caught.value.kind == "timeout"
    assert all(d.limits != limits for d in safe_decode._POOL.idle)  # killed, not reused


def test_implausible_decoder_answer_is_refused_and_the_decoder_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compromised child could send anything (it is JSON and bytes, never a pickle): an absurd size
    # is refused, not read or trusted.
    decoder = DecoderProcess(ChildLimits())
    monkeypatch.setattr(decoder, "_length", lambda deadline: 40)
    monkeypatch.setattr(decoder, "_read", lambda size, deadline: b'{"ok": true, "sizes": [999999999999]}')
    path = _write(tmp_path, "a.jpg", images.jpeg(6))
    with pytest.raises(DecodeAborted, match=r"malformed answer.*implausible blob size"):
        decoder.normalise(path, "a.jpg", ImageLimits(), with_image=False)
    assert decoder.proc.poll() is not None


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM", "ICO", "TGA"])
def test_formats_outside_the_allow_list_are_never_parsed(tmp_path: Path, fmt: str) -> None:
    # Named .jpg, so only the content decides: their decoders are not even tried.
    path = _write(tmp_path, "x.jpg", images.encode(images.picture(7, (64, 48)), fmt))
    with pytest.raises(ImageRejected, match="not an image in an accepted format"):
        normalise_isolated(path, "x.jpg")
