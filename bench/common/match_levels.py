"""Shared plumbing for bench.edited_copies and bench.same_room: photos, ground truth, cached evidence."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.paths import RESULTS
from search.ml.images.hashing import dhash, hamming, phash, pixel_sha256
from search.ml.match.levels import Candidate, LevelThresholds
from search.ml.match.local import LocalConfig, LocalFeatures, Verification, extract_local, verify

CACHE = RESULTS / "cache"
ENCODER = "effnet-lite0"
MACHINE = "2-core x86_64 VM, 24 GiB, CPU only, shared with other jobs"


@dataclass
class PhotoRecord:
    """Everything the matcher needs about one photo (stored or query)."""

    key: str
    embedding: np.ndarray  # (D,) float32, unit norm
    sha256: str
    phash: int
    dhash: int
    features: LocalFeatures
    extras: dict[str, str]


def _cache_path(namespace: str, key: str) -> Path:
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:20]
    return CACHE / namespace / f"{digest}.npz"


def save_record(namespace: str, rec: PhotoRecord) -> None:
    """Write one record as an npz (no pickle)."""
    path = _cache_path(namespace, rec.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "key": rec.key,
        "sha256": rec.sha256,
        "phash": rec.phash,
        "dhash": rec.dhash,
        "extras": rec.extras,
    }
    local = np.frombuffer(rec.features.to_bytes(), dtype=np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, emb=rec.embedding, local=local, meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def load_record(namespace: str, key: str) -> PhotoRecord | None:
    """Read a cached record, or None."""
    path = _cache_path(namespace, key)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        feats = LocalFeatures.from_bytes(z["local"].tobytes())
        return PhotoRecord(
            meta["key"],
            z["emb"],
            meta["sha256"],
            meta["phash"],
            meta["dhash"],
            feats,
            meta["extras"],
        )


def load_encoder_cpu() -> Callable[[list[Image.Image]], np.ndarray]:
    """The product's default encoder on CPU, as a batch function."""
    import torch

    from search.ml.encoders.registry import load_encoder

    torch.set_num_threads(1)
    encoder = load_encoder(ENCODER, device="cpu")
    return lambda images: encoder.embed_images(images, batch_size=16)


def compute_records(
    namespace: str,
    items: Sequence[tuple[str, Callable[[], Image.Image]]],
    cfg: LocalConfig,
    extras: Callable[[Image.Image], dict[str, str]] | None = None,
    batch: int = 16,
    on_step: Callable[[int, int], None] | None = None,
) -> list[PhotoRecord]:
    """Records for (key, image loader) items, computing and caching the missing ones."""
    out: dict[str, PhotoRecord] = {}
    missing = []
    for key, loader in items:
        rec = load_record(namespace, key)
        if rec is None:
            missing.append((key, loader))
        else:
            out[key] = rec
    embed = load_encoder_cpu() if missing else None
    for lo in range(0, len(missing), batch):
        chunk = missing[lo : lo + batch]
        images = [loader() for _, loader in chunk]
        assert embed is not None
        emb = embed(images)
        for (key, _), img, e in zip(chunk, images, emb, strict=True):
            rec = PhotoRecord(
                key,
                e,
                pixel_sha256(img),
                phash(img),
                dhash(img),
                extract_local(img, cfg),
                extras(img) if extras else {},
            )
            save_record(namespace, rec)
            out[key] = rec
        if on_step is not None:
            on_step(lo + len(chunk), len(missing))
    return [out[key] for key, _ in items]


def duplicate_groups(records: Sequence[PhotoRecord], max_phash: int = 8, max_dhash: int = 12) -> list[int]:
    """Group id per photo: photos with equal pixels or near-identical hashes (the same picture) share one."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(records):
        for j in range(i + 1, len(records)):
            b = records[j]
            same = a.sha256 == b.sha256 or (
                hamming(a.phash, b.phash) <= max_phash and hamming(a.dhash, b.dhash) <= max_dhash
            )
            if same:
                parent[find(j)] = find(i)
    return [find(i) for i in range(len(records))]


@dataclass
class CandidateRow:
    """One verified (or only globally scored) candidate of one query, cached for offline calibration."""

    query: str
    cand: int
    global_score: float
    rank: int
    pixel_equal: bool
    phash_distance: int
    verification: dict[str, float | int | str | bool] | None

    def candidate(self) -> Candidate:
        """Back to the matcher's Candidate."""
        v = Verification(**self.verification) if self.verification is not None else None  # type: ignore[arg-type]
        return Candidate(self.cand, self.global_score, self.pixel_equal, self.phash_distance, v)


class Collection:
    """Stored photos: embedding matrix plus per-photo evidence, with a brute-force global search."""

    def __init__(self, records: Sequence[PhotoRecord], centre: np.ndarray | None = None) -> None:
        self.records = list(records)
        # Optional centring on the collection mean: cosine of (x - mean) spreads the compressed GeM range.
        self.centre = centre
        self.matrix = np.stack([self.vector(r) for r in records]).astype(np.float32)  # (N, D)

    def vector(self, rec: PhotoRecord) -> np.ndarray:
        """The (optionally centred) unit vector the global search compares."""
        if self.centre is None:
            return rec.embedding
        v = rec.embedding - self.centre
        return v / (np.linalg.norm(v) + 1e-12)

    def shortlist(self, q: PhotoRecord, k: int, exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
        """Top-k ids by cosine (the GeM embedding is nearly mirror-invariant: no separate mirror query)."""
        scores = self.matrix @ self.vector(q)  # (N,)
        for i in exclude:
            scores[i] = -np.inf
        top = np.argsort(-scores)[:k]
        return [(int(i), float(scores[i])) for i in top]

    def candidates(
        self, q: PhotoRecord, k: int, cfg: LocalConfig, exclude: Iterable[int] = (), mirror_k: int = 10
    ) -> list[CandidateRow]:
        """Global shortlist of k, each verified locally (mirrored query tried for the first mirror_k)."""
        rows = []
        for rank, (i, score) in enumerate(self.shortlist(q, k, exclude)):
            rec = self.records[i]
            v = verify(q.features, rec.features, cfg, mirror=None if rank < mirror_k else False)
            rows.append(
                CandidateRow(
                    q.key, i, score, rank, q.sha256 == rec.sha256, hamming(q.phash, rec.phash), asdict(v)
                )
            )
        return rows


def classify_rows(rows: Sequence[CandidateRow], t: LevelThresholds) -> list[tuple[CandidateRow, object]]:
    """(row, Match or None) with only the first t.verify_top_k rows keeping their verification."""
    from search.ml.match.levels import classify

    out = []
    for row in rows:
        cand = row.candidate()
        if row.rank >= t.verify_top_k:
            cand.verification = None
        out.append((row, classify(cand, t)))
    return out


def save_rows(path: Path, rows: Sequence[CandidateRow]) -> None:
    """Cache candidate rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row)) + "\n")


def load_rows(path: Path) -> list[CandidateRow]:
    """Inverse of save_rows."""
    if not path.exists():
        return []
    return [CandidateRow(**json.loads(line)) for line in path.read_text().splitlines() if line]


class Progress:
    """Prints progress at most every few seconds."""

    def __init__(self, label: str, every_s: float = 20.0) -> None:
        self.label, self.every_s, self.start, self.last = label, every_s, time.time(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        if now - self.last >= self.every_s or done == total:
            self.last = now
            print(f"  {self.label}: {done}/{total} ({now - self.start:.0f} s)", flush=True)
