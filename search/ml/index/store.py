"""Versioned, crash-safe on-disk store for VectorIndex (one folder per encoder).

Layout of ``root``:
- ``v00000012.idx``  the index (see ``VectorIndex.save_to``), immutable once renamed into place;
- ``v00000012.json`` its manifest (kind, count, dim, created_at, size, sha256, meta). A version exists only
  when its manifest does: the manifest is renamed into place after the index file and the folder are fsynced,
  so a crash at any point leaves either the whole version or nothing that ``versions()`` lists;
- ``.v-<pid>-<rand>.idx.tmp``  in-flight writes (a crash leaves them behind; ``prune`` removes old ones);
- ``.reindex.lock``  ``lock()`` (non-blocking flock: a second reindex job is refused);
- ``.write.lock``   held briefly by ``write``/``prune`` while numbering and renaming versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from search.ml.index.config import IndexConfig, IndexCorrupt, IndexLocked, IndexMissing
from search.ml.index.segment import SegmentMeta, segment_open, segment_valid, segment_write
from search.ml.index.segments import SegmentedIndex, is_list, list_parse
from search.ml.index.vector import VectorIndex

logger = logging.getLogger(__name__)

_VERSION_FILE = re.compile(r"^v(\d{8})\.(idx|json)$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class IndexVersionInfo:
    """One complete version as described by its manifest."""

    version: int
    path: Path
    kind: str
    count: int
    dim: int
    created_at: str
    sha256: str
    size: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class _HashingSink:
    """File writer that hashes and counts what passes through (FAISS streams into it)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write temp file, fsync, rename over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _file_sha256(fh: BinaryIO) -> str:
    sha = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


class IndexStore:
    """Versioned index files under ``root``; see the module docstring for the crash-safety protocol."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # (version, size, mtime_ns) -> checksum ok; keeps reload polling from rehashing a bad newest file
        self._verified: dict[tuple[int, int, int], bool] = {}

    def _idx_path(self, version: int) -> Path:
        return self.root / f"v{version:08d}.idx"

    def _manifest_path(self, version: int) -> Path:
        return self.root / f"v{version:08d}.json"

    def _numbers(self, suffix: str | None = None) -> list[int]:
        found = []
        for entry in os.scandir(self.root):
            m = _VERSION_FILE.match(entry.name)
            if m and (suffix is None or m.group(2) == suffix):
                found.append(int(m.group(1)))
        return sorted(set(found))

    # ---- writing -------------------------------------------------------------------------------
    def write(
        self, index: VectorIndex | SegmentedIndex, meta: dict[str, Any] | None = None
    ) -> IndexVersionInfo:
        """Persist ``index`` as a new version (temp + fsync + rename, then the manifest the same way).

        A SegmentedIndex writes only its pending rows (one new segment) and a new segment list.
        """
        if isinstance(index, SegmentedIndex):
            staged = []
            if len(index.pending):
                ids = index.pending.ids()
                staged.append(
                    self.segment_stage(
                        [(ids, index.pending.vectors(ids))], ids.size, index.config, seq=index.max_seq + 1
                    )
                )
            return self.write_list(index, [m for m, _ in index.segments], staged, meta)
        return self._write_version(index.save_to, index.kind, len(index), index.config.dim, meta or {})

    def segment_stage(
        self, chunks: Iterable[tuple[Any, Any]], n: int, config: IndexConfig, *, seq: int
    ) -> tuple[Path, SegmentMeta]:
        """Write up to ``n`` rows as a segment under a temp name (renamed by ``write_list``): (temp, meta)."""
        name = f"s{secrets.token_hex(8)}.seg"
        tmp = self.root / f".{name}.{os.getpid()}.tmp"
        size, sha, rows = segment_write(tmp, chunks, int(n), config)
        return tmp, SegmentMeta(name=name, seq=seq, count=rows, size=size, sha256=sha)

    def write_list(
        self,
        index: SegmentedIndex,
        metas: list[SegmentMeta],
        staged: list[tuple[Path, SegmentMeta]],
        meta: dict[str, Any] | None = None,
        *,
        count: int | None = None,
    ) -> IndexVersionInfo:
        """New version listing ``metas`` plus the ``staged`` segments (renamed into place first).

        ``count``: live rows of the result when it is not ``len(index)`` (compaction swaps segments).
        """
        all_metas = [*metas, *(m for _, m in staged)]
        payload = index.list_bytes(all_metas)
        count = len(index) if count is None else count
        try:
            return self._write_version(
                lambda sink: sink.write(payload), "segments", count, index.config.dim, meta or {}, staged
            )
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)

    def _write_version(
        self,
        save: Callable[[Any], Any],
        kind: str,
        count: int,
        dim: int,
        meta: dict[str, Any],
        staged: list[tuple[Path, SegmentMeta]] = (),  # type: ignore[assignment]
    ) -> IndexVersionInfo:
        tmp = self.root / f".v-{os.getpid()}-{secrets.token_hex(4)}.idx.tmp"
        try:
            with open(tmp, "xb") as fh:
                sink = _HashingSink(fh)
                save(sink)
                fh.flush()
                os.fsync(fh.fileno())
            with self._write_lock():  # prune takes it too: it never sees a segment that no list names yet
                for seg_tmp, seg_meta in staged:
                    os.replace(seg_tmp, self.root / seg_meta.name)
                version = max(self._numbers(), default=0) + 1
                path = self._idx_path(version)
                info = self._info(version, kind, count, dim, sink, meta)
                os.replace(tmp, path)
                try:
                    _fsync_dir(
                        self.root
                    )  # index and segments must be durable before a manifest points at them
                    _atomic_write_bytes(self._manifest_path(version), self._manifest_bytes(info))
                except BaseException:
                    path.unlink(missing_ok=True)  # no manifest: the version never existed
                    raise
        finally:
            tmp.unlink(missing_ok=True)
        stat = path.stat()
        self._verified[(version, stat.st_size, stat.st_mtime_ns)] = True
        logger.info("wrote index version %d (%s, %d vectors) to %s", version, info.kind, info.count, path)
        return info

    def _info(
        self, version: int, kind: str, count: int, dim: int, sink: _HashingSink, meta: dict[str, Any]
    ) -> IndexVersionInfo:
        return IndexVersionInfo(
            version=version,
            path=self._idx_path(version),
            kind=kind,
            count=count,
            dim=dim,
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            sha256=sink.sha.hexdigest(),
            size=sink.size,
            meta=dict(meta),
        )

    @staticmethod
    def _manifest_bytes(info: IndexVersionInfo) -> bytes:
        body = {
            k: getattr(info, k) for k in ("version", "kind", "count", "dim", "created_at", "sha256", "size")
        }
        body.update(file=info.path.name, meta=info.meta)
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: only held for renames, never for long
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # ---- reading -------------------------------------------------------------------------------
    def latest_version(self) -> int | None:
        """Newest version number with a manifest, from a directory listing only (nothing is verified)."""
        return max(self._numbers("json"), default=None)

    def versions(self) -> list[IndexVersionInfo]:
        """Versions with a parseable manifest and an index file of the recorded size, oldest first."""
        infos = []
        for version in self._numbers("json"):
            info = self._read_manifest(version)
            if info is not None:
                infos.append(info)
        return infos

    def _read_manifest(self, version: int) -> IndexVersionInfo | None:
        try:
            body = json.loads(self._manifest_path(version).read_bytes())
            info = IndexVersionInfo(
                version=int(body["version"]),
                path=self._idx_path(version),
                kind=str(body["kind"]),
                count=int(body["count"]),
                dim=int(body["dim"]),
                created_at=str(body["created_at"]),
                sha256=str(body["sha256"]),
                size=int(body["size"]),
                meta=dict(body.get("meta") or {}),
            )
            if info.version != version or info.path.stat().st_size != info.size:
                raise ValueError("manifest does not match its index file")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("index version %d in %s is incomplete or damaged: %s", version, self.root, exc)
            return None
        return info

    def load(self, version: int | None = None) -> tuple[VectorIndex | SegmentedIndex, IndexVersionInfo]:
        """Load ``version`` or, for None, the newest one that verifies (damaged newer ones are skipped)."""
        infos = self.versions()
        if version is not None:
            infos = [i for i in infos if i.version == version]
            if not infos:
                raise IndexCorrupt(f"index version {version} in {self.root} is missing or damaged")
        if not infos:
            raise IndexMissing(f"no index version in {self.root}")
        errors = []
        for info in reversed(infos):
            try:
                return self._load_one(info), info
            except (IndexCorrupt, OSError) as exc:
                logger.warning("skipping index version %d in %s: %s", info.version, self.root, exc)
                errors.append(f"v{info.version}: {exc}")
        raise IndexCorrupt(f"no loadable index version in {self.root}: {'; '.join(errors)}")

    def _load_one(self, info: IndexVersionInfo) -> VectorIndex | SegmentedIndex:
        index: VectorIndex | SegmentedIndex
        with open(info.path, "rb") as fh:
            self._verify(info, fh)
            fh.seek(0)
            if is_list(fh.read(8)):
                fh.seek(0)
                index = self._open_list(fh.read())
            else:
                fh.seek(0)
                index = VectorIndex.load_from(fh)
        if len(index) != info.count or index.config.dim != info.dim or index.kind != info.kind:
            raise IndexCorrupt(f"index version {info.version} does not match its manifest")
        return index

    def _verify(self, info: IndexVersionInfo, fh: BinaryIO) -> None:
        """Checksum before parsing, so FAISS never reads damaged bytes."""
        stat = os.fstat(fh.fileno())
        key = (info.version, stat.st_size, stat.st_mtime_ns)
        if key not in self._verified:
            self._verified[key] = stat.st_size == info.size and _file_sha256(fh) == info.sha256
        if not self._verified[key]:
            raise IndexCorrupt(f"index version {info.version}: checksum or size mismatch")

    def _open_list(self, data: bytes) -> SegmentedIndex:
        config, metas, tomb_ids, tomb_seqs = list_parse(data)
        segments = [(m, segment_open(self.root / m.name, m)) for m in metas]
        return SegmentedIndex(config, segments, tomb_ids, tomb_seqs)

    def is_valid(self, info: IndexVersionInfo) -> bool:
        """True when the version's file (and, for a list, every segment) matches its checksum (cached)."""
        try:
            with open(info.path, "rb") as fh:
                self._verify(info, fh)
                fh.seek(0)  # the checksum read may have moved to the end
                if is_list(fh.read(8)):
                    fh.seek(0)
                    metas = list_parse(fh.read())[1]
                    return all(segment_valid(self.root / m.name, m) for m in metas)
        except (IndexCorrupt, OSError):
            return False
        return True

    def segment_names(self, info: IndexVersionInfo) -> set[str]:
        """Segment files a version lists (empty for a single-file version or an unreadable list)."""
        try:
            with open(info.path, "rb") as fh:
                data = fh.read()
            return {m.name for m in list_parse(data)[1]} if is_list(data) else set()
        except (IndexCorrupt, OSError):
            return set()

    # ---- maintenance ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive cross-process reindex lock; raises IndexLocked at once if someone holds it."""
        fd = os.open(self.root / ".reindex.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise IndexLocked(
                    f"another reindex is running: {self.root} is locked by pid {holder}; "
                    "try again when it ends"
                ) from exc
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock, also when the holder is killed

    def prune(self, keep: int = 3, tmp_max_age_s: float = 3600.0, protect: Iterable[int] = ()) -> list[int]:
        """Keep the newest ``keep`` valid versions and ``protect``; delete the rest (returned) and orphans."""
        if keep < 1:
            raise ValueError("keep must be >= 1")
        with self._write_lock():
            deleted = self._prune_versions(keep, set(protect))
            self._prune_tmp(tmp_max_age_s)
            self._prune_segments()
        if deleted:
            _fsync_dir(self.root)
        return deleted

    def _prune_versions(self, keep: int, protect: set[int]) -> list[int]:
        listed = {i.version: i for i in self.versions()}
        kept: list[int] = []
        for version in sorted(listed, reverse=True):  # verify newest first, only until `keep` are good
            if len(kept) == keep:
                break
            if self.is_valid(listed[version]):
                kept.append(version)
        if not kept:
            return []  # nothing verifies: leave the evidence alone, the caller rebuilds from the database
        deleted = [v for v in self._numbers() if v not in kept and v not in protect]
        for version in deleted:  # older than kept, damaged, or orphan .idx without manifest (crash leftovers)
            self._manifest_path(version).unlink(missing_ok=True)  # manifest first: never a dangling listing
            self._idx_path(version).unlink(missing_ok=True)
        return deleted

    def _prune_segments(self) -> None:
        """Delete segment files that no remaining version lists (write lock held)."""
        listed: set[str] = set()
        for info in self.versions():
            listed |= self.segment_names(info)
        for entry in os.scandir(self.root):
            if entry.name.endswith(".seg") and entry.name not in listed:
                Path(entry.path).unlink(missing_ok=True)

    def _prune_tmp(self, max_age_s: float) -> None:
        cutoff = time.time() - max_age_s
        for entry in os.scandir(self.root):
            if entry.name.endswith(".tmp") and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)


class LiveIndex:
    """Per-process cached index (web or worker): loaded once, reloaded when a newer version is live."""

    def __init__(
        self, store: IndexStore, poll_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.poll_s, self._clock = store, poll_s, clock
        self._current: tuple[VectorIndex | SegmentedIndex, IndexVersionInfo] | None = None
        self._checked_at = -math.inf
        self._seen_latest: int | None = None  # newest number tried, so a damaged one is not re-read per poll
        self._lock = threading.Lock()

    def get(self) -> tuple[VectorIndex | SegmentedIndex, IndexVersionInfo]:
        """Current index; polls ``latest_version()`` at most every ``poll_s``. IndexCorrupt if none loads."""
        current = self._current
        if current is not None and self._clock() - self._checked_at < self.poll_s:
            return current
        if not self._lock.acquire(blocking=current is None):
            return current  # type: ignore[return-value]  # another thread is reloading: serve the old one
        try:
            self._checked_at = self._clock()
            latest = self.store.latest_version()
            if self._current is None or (
                latest != self._seen_latest and (latest or 0) > self._current[1].version
            ):
                self._seen_latest = latest
                self._reload()
            assert self._current is not None
            return self._current
        finally:
            self._lock.release()

    def _reload(self) -> None:
        try:
            loaded = self.store.load()
            if self._current is None or loaded[1].version > self._current[1].version:
                self._current = loaded  # readers keep the old object until they drop it
        except IndexCorrupt:
            if self._current is None:
                raise
            logger.exception("keeping index version %d: newer versions do not load", self._current[1].version)

    def invalidate(self) -> None:
        """Force a version check on the next ``get`` (e.g. right after this process wrote a version)."""
        self._checked_at = -math.inf
