"""Decode untrusted images in a separate, resource-limited process: a decoder crash fails only that photo.

The parent talks to a small pool of long-lived decoder processes (`python -c`, never fork: Celery's
prefork workers may not start multiprocessing children). Each child caps its address space (RLIMIT_AS)
and CPU time, and the parent enforces a wall-time limit; a child that crashes, runs out of memory or
takes too long is killed and replaced, and only the photo it was decoding is rejected. Results come back
as a JSON header plus raw byte blobs, never as a pickle, so even a compromised decoder cannot run code
in the parent.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import select
import signal
import subprocess  # starts only our own decoder (this interpreter, fixed code)  # nosec B404
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from search.ml.images.normalise import ImageLimits, ImageRejected, Normalised, normalise

_HEADER_BYTES = 8
_MAX_HEADER = 64 * 1024
_IDLE_CAP = 4  # idle decoders kept per process; a busier moment starts more and closes them after
_RECYCLE_AFTER = 500  # files per decoder process: bounds any slow leak inside the decoders


@dataclass(frozen=True)
class ChildLimits:
    """Resources one decoder process may use for one file."""

    memory_mb: int = 1024  # address space on top of the loaded interpreter and libraries
    timeout_s: float = 20.0


class DecodeAborted(ImageRejected):
    """The decoder process crashed, ran out of memory or time; `kind` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "crashed" | "memory" | "timeout" | "protocol"


def normalise_isolated(
    path: Path,
    name: str,
    limits: ImageLimits | None = None,
    child: ChildLimits | None = None,
    *,
    with_image: bool = True,
    derivatives: bool = True,
) -> Normalised:
    """normalise() in a decoder process under memory and time limits; failures raise ImageRejected."""
    if not (with_image or derivatives):
        raise ValueError("ask for the pixels, the derivatives or both")
    child_limits = child or ChildLimits()
    for attempt in (1, 2):
        decoder = _POOL.acquire(child_limits)
        try:
            return decoder.normalise(
                path, name, limits or ImageLimits(), with_image=with_image, derivatives=derivatives
            )
        except _StaleDecoder:
            if attempt == 2:
                raise
        finally:
            _POOL.release(decoder)
    raise AssertionError("unreachable")


class _StaleDecoder(DecodeAborted):
    """The decoder was already gone before it got the request: not this file's fault, try another."""


class DecoderProcess:
    """One decoder child, reused for many files until it fails or has served its share."""

    def __init__(self, limits: ChildLimits) -> None:
        self.limits = limits
        self.served = 0
        self.closed = False
        self.owner_pid = os.getpid()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])
        args = f"{int(limits.memory_mb)}, {float(limits.timeout_s)!r}"
        code = f"from search.ml.images.safe_decode import child_main; child_main({args})"
        self.proc = subprocess.Popen(  # fixed argv, no shell; the path goes via stdin  # nosec B603
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,
        )

    @property
    def alive(self) -> bool:
        """Still running and reusable."""
        return self.proc.poll() is None and self.served < _RECYCLE_AFTER

    def normalise(
        self, path: Path, name: str, limits: ImageLimits, *, with_image: bool, derivatives: bool = True
    ) -> Normalised:
        """Send one file to the child and wait for its derivatives or its refusal."""
        request = {
            "path": str(path),
            "name": name,
            "limits": asdict(limits),
            "with_image": with_image,
            "derivatives": derivatives,
        }
        deadline = time.monotonic() + self.limits.timeout_s
        self.served += 1
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        except OSError:
            self.close()
            raise _StaleDecoder("crashed", "the decoder process had stopped before the request") from None
        try:
            header = json.loads(self._read(self._length(deadline), deadline))
            blobs = [self._read(_size(n, limits), deadline) for n in header.get("sizes", [])]
        except TimeoutError:
            self.close()
            raise DecodeAborted(
                "timeout", f"decoding took longer than {self.limits.timeout_s:g} s; the image was refused"
            ) from None
        except (BrokenPipeError, EOFError) as exc:
            raise self._died(exc) from None
        except (OSError, ValueError) as exc:
            self.close()
            raise DecodeAborted("protocol", f"the decoder gave a malformed answer ({exc}); refused") from None
        if header.get("kind") == "memory":
            self.close()  # it exits after running out of memory; never hand it another file
        try:
            return _result(header, blobs, self.limits, limits)
        except ImageRejected:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.close()
            raise DecodeAborted("protocol", f"the decoder gave a malformed answer ({exc}); refused") from None

    def close(self) -> None:
        """Stop the child (it also exits by itself when the parent's end of its stdin closes)."""
        self.closed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def _length(self, deadline: float) -> int:
        length = int.from_bytes(self._read(_HEADER_BYTES, deadline), "big")
        if not 0 < length <= _MAX_HEADER:
            raise ValueError(f"bad header length {length}")
        return length

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        left = size
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError("decoder closed its output")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _died(self, exc: BaseException) -> DecodeAborted:
        self.close()
        code = self.proc.returncode
        if code is not None and code < 0:
            sig = signal.Signals(-code)
            if sig == signal.SIGXCPU:
                return DecodeAborted("timeout", "decoding used too much CPU time; the image was refused")
            return DecodeAborted("crashed", f"the image crashed the decoder ({sig.name}); it was refused")
        return DecodeAborted("crashed", f"the decoder stopped unexpectedly (exit {code}, {exc}); refused")


def _size(value: Any, limits: ImageLimits) -> int:
    # The child is untrusted once it has parsed a hostile file: never read more than a real answer needs.
    size = int(value)
    if not 0 <= size <= 3 * limits.max_pixels + (64 << 20):
        raise ValueError(f"implausible blob size {size}")
    return size


def _result(
    header: dict[str, Any], blobs: list[bytes], limits: ChildLimits, image_limits: ImageLimits
) -> Normalised:
    if not header.get("ok"):
        kind, reason = str(header.get("kind", "")), str(header.get("reason", "unreadable image"))
        if kind == "rejected":
            raise ImageRejected(reason)
        if kind == "memory":
            raise DecodeAborted(
                "memory", f"decoding needs more than {limits.memory_mb} MB of memory; the image was refused"
            )
        raise ImageRejected(f"unreadable image (decoder error: {reason})")
    width, height = int(header["width"]), int(header["height"])
    if width * height > image_limits.max_pixels or len(blobs) not in (2, 3):
        raise ValueError("answer does not match the request")
    jpeg, thumbnail = blobs[0], blobs[1]
    if len(blobs) > 2:
        image = Image.frombytes("RGB", (width, height), blobs[2])
    else:
        # Pixels were not asked for: the stored derivative stands in (opened lazily, never decoded here
        # unless a caller reads it).
        image = Image.open(io.BytesIO(jpeg), formats=("JPEG",))
    return Normalised(
        image=image,
        width=width,
        height=height,
        jpeg=jpeg,
        thumbnail=thumbnail,
        sha256_pixels=str(header["sha256_pixels"]),
        phash=int(header["phash"]),
    )


class _Pool:
    """Idle decoder processes of this OS process (a forked worker starts its own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[DecoderProcess] = []
        self.pid = os.getpid()

    def acquire(self, limits: ChildLimits) -> DecoderProcess:
        with self.lock:
            if self.pid != os.getpid():  # inherited through fork: those children belong to the parent
                self.idle, self.pid = [], os.getpid()
            while self.idle:
                decoder = self.idle.pop()
                if not decoder.closed and decoder.alive and decoder.limits == limits:
                    return decoder
                decoder.close()
        return DecoderProcess(limits)

    def release(self, decoder: DecoderProcess) -> None:
        with self.lock:
            mine = decoder.owner_pid == os.getpid()
            if not decoder.closed and decoder.alive and mine and len(self.idle) < _IDLE_CAP:
                self.idle.append(decoder)
                return
        if decoder.owner_pid == os.getpid():
            decoder.close()

    def close_all(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for decoder in idle:
            if decoder.owner_pid == os.getpid():
                decoder.close()


_POOL = _Pool()
atexit.register(_POOL.close_all)


# --- the child side -------------------------------------------------------------------------------


def child_main(memory_mb: int, timeout_s: float) -> None:
    """Decoder process: read one JSON request per line, answer each with a header and byte blobs."""
    import resource

    import cv2

    cv2.setNumThreads(1)  # one thread: less address space, and no pool to inherit
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _set_soft_limit(resource, resource.RLIMIT_AS, _address_space() + memory_mb * 1024 * 1024)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        _cpu_budget(resource, timeout_s)
        header, blobs = _child_handle(line)
        body = json.dumps(header).encode()
        out.write(len(body).to_bytes(_HEADER_BYTES, "big") + body)
        for blob in blobs:
            out.write(blob)
        out.flush()
        if header.get("kind") == "memory":
            return  # the heap may be in a poor state after running out: let a fresh child take over


def _child_handle(line: bytes) -> tuple[dict[str, Any], list[bytes]]:
    try:
        request = json.loads(line)
        limits = ImageLimits(**request["limits"])
        derivatives = bool(request.get("derivatives", True))
        result = normalise(Path(request["path"]), request["name"], limits, derivatives=derivatives)
        blobs = [result.jpeg, result.thumbnail]
        if request.get("with_image"):
            blobs.append(result.image.tobytes())
    except ImageRejected as exc:
        return {"ok": False, "kind": "rejected", "reason": str(exc)}, []
    except MemoryError:
        return {"ok": False, "kind": "memory", "reason": "out of memory"}, []
    except Exception as exc:  # any other decoder failure is this file's problem, reported as such
        return {"ok": False, "kind": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}, []
    header = {
        "ok": True,
        "width": result.width,
        "height": result.height,
        "sha256_pixels": result.sha256_pixels,
        "phash": result.phash,
        "sizes": [len(b) for b in blobs],
    }
    return header, blobs


def _address_space() -> int:
    # VmSize of this process: the interpreter and libraries already mapped count against RLIMIT_AS.
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmSize:"):
                return int(row.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_budget(resource: Any, timeout_s: float) -> None:
    # A decoder stuck in a loop kills itself (SIGXCPU) even when its parent is gone and cannot kill it;
    # the parent's wall-time limit normally fires first.
    used = resource.getrusage(resource.RUSAGE_SELF)
    _set_soft_limit(resource, resource.RLIMIT_CPU, int(used.ru_utime + used.ru_stime + timeout_s) + 5)


def _set_soft_limit(resource: Any, which: int, soft: int) -> None:
    _, hard = resource.getrlimit(which)
    resource.setrlimit(which, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
