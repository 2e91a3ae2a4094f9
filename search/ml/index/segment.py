"""One immutable index segment: sorted ids, a memory-mapped float store and an optional IVF-PQ shortlist.

File layout (little-endian): ``FSSEG001`` magic, u64 header length, JSON header, padding to a page
boundary (``ids_offset``, a multiple of ``_HEAD``, big enough for the config's centre); ids (N,) int64
ascending at ``ids_offset``; vectors (N, D) float32 (prepared: centred when the config
says so) at the next 64-byte boundary; the FAISS shortlist index (serialised) after them, if any.

Why: every web process maps the same file read-only, so the page cache holds one copy of the floats for
all of them and a process only pays for the pages it touches (the rows it re-scores). The shortlist
(IVF-PQ codes, ~m bytes per vector) is the only part each process holds in its own memory.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from search.ml.files import file_sha256
from search.ml.index.config import IndexConfig, IndexCorrupt

_faiss: Any = faiss
SEGMENT_MAGIC = b"FSSEG001"
_HEAD = 4096  # header region granularity: offsets are known before the rows are streamed in
_ALIGN = 64
_PAD = np.float32(-np.inf)
_DROP_ROWS = 256  # rows re-scored between drops of a shortlisted mapping (page-cache folios can be large)
_EXACT_CHUNK = 65_536  # rows scored per matrix product in an exact scan (bounds the temporary)


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


@dataclass(frozen=True)
class SegmentMeta:
    """How a version's list names one segment file (``seq`` orders segments: newer rows win)."""

    name: str
    seq: int
    count: int
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form stored in a version's segment list."""
        return {
            "name": self.name,
            "seq": self.seq,
            "count": self.count,
            "size": self.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentMeta:
        """Inverse of ``to_dict`` (raises KeyError/ValueError/TypeError on a malformed entry)."""
        return cls(str(d["name"]), int(d["seq"]), int(d["count"]), int(d["size"]), str(d["sha256"]))


def _pq_m(dim: int) -> int:
    """Sub-quantisers for PQ: the largest divisor of ``dim`` up to 64 with sub-vectors of 8+ dimensions.

    FAISS needs dim % m == 0; sub-vectors under 8 dimensions train ~20x slower (measured: 256-d, m=64:
    17 s on 20k rows; m=32: 0.9 s) for a shortlist that the exact re-scoring corrects anyway.
    """
    fitting = [m for m in (64, 48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0 and dim // m >= 8]
    return fitting[0] if fitting else 1


def ann_train(sample: np.ndarray, n_total: int, config: IndexConfig) -> Any:
    """An empty IVF-PQ index (inner product) for ``n_total`` vectors, trained on (S, D) ``sample``."""
    dim = int(sample.shape[1])
    # At most 1024 lists and 10 k-means rounds: training stays minutes at 1M rows on 2 cores, and the exact
    # re-scoring of the shortlist makes up for the coarser lists (bench/README.md, "Index scale").
    nlist = int(min(1024, max(16, 4 * math.sqrt(n_total)), max(16, sample.shape[0] // 39)))
    quantizer = _faiss.IndexFlatIP(dim)
    # 8-bit codes need 256 * 39 training rows per sub-quantiser; small bases get fewer bits
    nbits = int(min(8, max(4, math.log2(max(16, sample.shape[0]) / 39))))
    index = _faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_m(dim), nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = index.pq.cp.niter = 10
    index.own_fields = True
    quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = min(config.nprobe, nlist)
    return index


class SegmentWriter:
    """Stream ``n`` rows (ascending ids) into a new segment file at ``path`` (a temp name)."""

    def __init__(self, path: Path, n: int, config: IndexConfig) -> None:
        self.path, self.n, self.config = Path(path), int(n), config
        # The header holds the config (a centre is dim floats as text) plus a few numbers: room for both.
        head = 16 + len(json.dumps(config.to_dict(), sort_keys=True)) + 512
        self.ids_offset = (head + _HEAD - 1) // _HEAD * _HEAD
        self.vec_offset = _align(self.ids_offset + 8 * self.n)
        self.end = self.vec_offset + 4 * self.n * config.dim
        self._fh = open(self.path, "xb")  # noqa: SIM115  # closed by finish() or abort()
        self._fh.truncate(self.end)
        self._rows = 0
        self._last_id = -1

    def write(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append a chunk: ids (B,) ascending and above every earlier id, prepared vectors (B, D)."""
        ids = np.asarray(ids, dtype="<i8")
        vecs = np.ascontiguousarray(vectors, dtype="<f4")  # (B, D)
        if vecs.shape != (ids.size, self.config.dim) or self._rows + ids.size > self.n:
            raise ValueError(f"segment chunk of shape {vecs.shape} does not fit ({self._rows}/{self.n} rows)")
        if ids.size and (ids[0] <= self._last_id or (np.diff(ids) <= 0).any()):
            raise ValueError("segment ids must be unique and ascending")
        os.pwrite(self._fh.fileno(), ids.tobytes(), self.ids_offset + 8 * self._rows)
        os.pwrite(self._fh.fileno(), vecs.tobytes(), self.vec_offset + 4 * self.config.dim * self._rows)
        self._rows += int(ids.size)
        if ids.size:
            self._last_id = int(ids[-1])

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._rows

    def finish(self, ann: Any | None = None) -> tuple[int, str]:
        """Write the shortlist and header, fsync; returns (size, sha256) of the file."""
        # Fewer rows than reserved is fine (rows deleted while a rebuild streamed): the header says how many.
        ann_bytes = b"" if ann is None else faiss.serialize_index(ann).tobytes()
        ann_offset = _align(self.end)
        header = {
            "format": 1,
            "count": self._rows,
            "dim": self.config.dim,
            "config": self.config.to_dict(),
            "ids_offset": self.ids_offset,
            "vec_offset": self.vec_offset,
            "ann_offset": ann_offset if ann_bytes else 0,
            "ann_size": len(ann_bytes),
        }
        raw = json.dumps(header, sort_keys=True).encode()
        if 16 + len(raw) > self.ids_offset:
            raise ValueError("segment header too large")
        fd = self._fh.fileno()
        os.pwrite(fd, SEGMENT_MAGIC + struct.pack("<Q", len(raw)) + raw, 0)
        if ann_bytes:
            os.pwrite(fd, ann_bytes, ann_offset)
        self._fh.flush()
        os.fsync(fd)
        self._fh.close()
        return self.path.stat().st_size, file_sha256(self.path)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._fh.close()
        self.path.unlink(missing_ok=True)


def segment_write(
    path: Path,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    n: int,
    config: IndexConfig,
    *,
    sample_rows: int = 100_000,
) -> tuple[int, str, int]:
    """Write a segment of at most ``n`` rows from ascending chunks: (size, sha256, rows).

    An IVF-PQ shortlist is added when ``rows >= config.exact_threshold``.
    """
    writer = SegmentWriter(path, n, config)
    try:
        for ids, vecs in chunks:
            writer.write(ids, vecs)
        ann, rows = None, writer.rows
        if rows >= config.exact_threshold and rows > 0:
            vecs = np.memmap(path, dtype="<f4", mode="r", offset=writer.vec_offset, shape=(rows, config.dim))
            ann = _ann_fill(vecs, config, sample_rows)
        return (*writer.finish(ann), rows)
    except BaseException:
        writer.abort()
        raise


def _ann_fill(vecs: np.ndarray, config: IndexConfig, sample_rows: int) -> Any:
    """Train on an evenly spaced sample, then add every row in chunks (labels = row positions)."""
    n = vecs.shape[0]
    step = max(1, n // sample_rows)
    ann = ann_train(np.asarray(vecs[::step][:sample_rows]), n, config)
    for lo in range(0, n, _EXACT_CHUNK):
        ann.add(np.ascontiguousarray(vecs[lo : lo + _EXACT_CHUNK]))
    return ann


class Segment:
    """A read-only, memory-mapped segment (see the module doc); ``seq`` comes from the version's list."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(16)
                if len(head) != 16 or head[:8] != SEGMENT_MAGIC:
                    raise IndexCorrupt(f"{self.path.name}: not a flatsite segment (bad magic)")
                header = json.loads(fh.read(struct.unpack("<Q", head[8:])[0]))
            self.config = IndexConfig.from_dict(header["config"])
            self.count, dim = int(header["count"]), int(header["dim"])
            self.ids = (
                np.memmap(self.path, "<i8", "r", offset=int(header["ids_offset"]), shape=(self.count,))
                if self.count
                else (np.empty(0, np.int64))
            )
            self.ann = self._load_ann(int(header["ann_offset"]), int(header["ann_size"]))
            self._map: mmap.mmap | None = None
            self._rows_read = 0
            self.vecs = self._map_vectors(int(header["vec_offset"]), dim)  # (N, D)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, struct.error) as exc:
            raise IndexCorrupt(f"{self.path.name}: unreadable segment: {exc}") from exc
        if dim != self.config.dim:
            raise IndexCorrupt(f"{self.path.name}: header dim does not match its config")

    def _map_vectors(self, offset: int, dim: int) -> np.ndarray:
        if not self.count:
            return np.empty((0, dim), np.float32)
        if self.ann is None:  # scanned whole by every search: a plain read-only mapping
            return np.memmap(self.path, "<f4", "r", offset=offset, shape=(self.count, dim))
        with open(self.path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(self._map, "<f4", count=self.count * dim, offset=offset).reshape(self.count, dim)

    def _load_ann(self, offset: int, size: int) -> Any | None:
        if not size:
            return None
        raw = np.fromfile(self.path, dtype=np.uint8, count=size, offset=offset)
        ann: Any = faiss.deserialize_index(raw)  # already the concrete IndexIVFPQ (and it owns itself)
        if ann.ntotal != self.count or ann.d != self.config.dim or not hasattr(ann, "nprobe"):
            raise IndexCorrupt(f"{self.path.name}: shortlist does not match the segment's rows")
        ann.nprobe = min(self.config.nprobe, ann.nlist)
        return ann

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """(P, D) stored vectors at ascending row ``positions`` (a copy).

        A shortlisted segment's re-scored rows are scattered, and each page fault maps at least 64 KB of
        neighbours (kernel fault-around, large page-cache folios), so a long-running web process would soon
        have the whole file in its RSS. Every ``_DROP_ROWS`` rows read (measured: 1 024 let RSS grow by
        155 MB within one search, 256 by nothing), the process's view of the mapping is dropped
        (MADV_DONTNEED): the pages stay in the page cache, one shared copy, and the next read maps them again.
        """
        pos = np.asarray(positions, dtype=np.int64)
        out = np.asarray(self.vecs[pos], dtype=np.float32)
        if self._map is not None:
            self._rows_read += int(pos.size)
            if self._rows_read >= _DROP_ROWS:
                self._rows_read = 0
                self._map.madvise(mmap.MADV_DONTNEED)
        return out

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions (N,), found (N,) bool) of ``ids`` in this segment's sorted id array."""
        if self.count == 0:
            return np.zeros(ids.shape, np.int64), np.zeros(ids.shape, bool)
        pos = np.searchsorted(self.ids, ids)
        found = np.asarray(self.ids[np.minimum(pos, self.count - 1)]) == ids
        return pos.astype(np.int64), found & (pos < self.count)

    def nbytes_resident(self) -> int:
        """Bytes this process holds privately for the segment (the shortlist codes), not the mapped file."""
        if self.ann is None:
            return 0
        return int(self.ann.ntotal) * (int(self.ann.code_size) + 8)

    def search(
        self, q: np.ndarray, k: int, dead: np.ndarray, rescore: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores (Q, k), row positions (Q, k), -inf / -1 padded) skipping ``dead`` row positions."""
        if self.ann is None:
            return self._exact(q, k, dead)
        depth = self.config.rescore if rescore is None else rescore
        want = min(self.count, max(depth, 4 * k) + int(dead.size))
        _, rows = self.ann.search(q, want)  # (Q, want) approximate shortlist
        out_s = np.full((q.shape[0], k), _PAD, np.float32)
        out_r = np.full((q.shape[0], k), -1, np.int64)
        for i in range(q.shape[0]):
            cand = rows[i][rows[i] >= 0]
            if dead.size:
                cand = cand[~np.isin(cand, dead)]
            cand = np.sort(cand)  # ascending rows read the mapped file in order
            exact = self.rows(cand) @ q[i]  # (C,) re-scored with the stored floats
            top = np.argsort(-exact, kind="stable")[:k]
            out_s[i, : top.size], out_r[i, : top.size] = exact[top], cand[top]
        return out_s, out_r

    def _exact(self, q: np.ndarray, k: int, dead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best_s = np.full((q.shape[0], 0), _PAD, np.float32)
        best_r = np.empty((q.shape[0], 0), np.int64)
        for lo in range(0, self.count, _EXACT_CHUNK):
            scores = (np.asarray(self.vecs[lo : lo + _EXACT_CHUNK]) @ q.T).T  # (Q, chunk)
            local = dead[(dead >= lo) & (dead < lo + scores.shape[1])] - lo
            scores[:, local] = _PAD
            rows = np.broadcast_to(np.arange(lo, lo + scores.shape[1]), scores.shape)
            best_s, best_r = _top(np.hstack([best_s, scores]), np.hstack([best_r, rows]), k)
        if best_s.shape[1] < k:  # fewer rows than k: pad
            pad = k - best_s.shape[1]
            best_s = np.hstack([best_s, np.full((q.shape[0], pad), _PAD, np.float32)])
            best_r = np.hstack([best_r, np.full((q.shape[0], pad), -1, np.int64)])
        best_r = np.where(np.isfinite(best_s), best_r, -1)
        return best_s.astype(np.float32, copy=False), best_r


def _top(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns per row of (Q, C) scores, sorted descending (ties: lower row first)."""
    if scores.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, rows = np.take_along_axis(scores, part, 1), np.take_along_axis(rows, part, 1)
    order = np.lexsort((rows, -scores), axis=1) if scores.size else np.zeros(scores.shape, np.int64)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


# ---- process-wide cache: a segment is opened, verified and mapped once however many versions list it ----
_open: weakref.WeakValueDictionary[tuple[str, int, int], Segment] = weakref.WeakValueDictionary()
_verified: dict[tuple[str, int, int, str], bool] = {}
_VERIFIED_MAX = 4096  # past this, results for files no longer on disk are forgotten (a long-lived worker)
_open_lock = threading.Lock()


def segment_open(path: Path, meta: SegmentMeta) -> Segment:
    """The segment at ``path``, checksummed against ``meta`` once per file state in this process."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise IndexCorrupt(f"segment {meta.name} is missing: {exc}") from exc
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _open_lock:
        seg = _open.get(key)
        if seg is None:
            if not segment_valid(path, meta):
                raise IndexCorrupt(f"segment {meta.name}: checksum or size mismatch")
            seg = Segment(path)
            if seg.count != meta.count:
                raise IndexCorrupt(f"segment {meta.name} holds {seg.count} rows, its list says {meta.count}")
            _open[key] = seg
        return seg


def segment_valid(path: Path, meta: SegmentMeta) -> bool:
    """True when the file has the listed size and checksum (cached per file state)."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns, meta.sha256)
    if key not in _verified:
        if len(_verified) >= _VERIFIED_MAX:
            _forget_gone()
        _verified[key] = stat.st_size == meta.size and file_sha256(path) == meta.sha256
    return _verified[key]


def _forget_gone() -> None:
    """Drop checksum results of files that were pruned or changed since (every upload adds a segment)."""
    for key in list(_verified):
        try:
            stat = os.stat(key[0])
        except OSError:
            del _verified[key]
            continue
        if (stat.st_size, stat.st_mtime_ns) != key[1:3]:
            del _verified[key]
