"""The imagededup peers (PHash, DHash, WHash at their default threshold) on the near-duplicate benchmark."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

import numpy as np
from PIL import Image

METHOD_NAMES = ("PHash", "DHash", "WHash")


class _QueryLike(Protocol):
    kind: str
    positives: frozenset[int]


class _RecordLike(Protocol):
    extras: dict[str, str]


@cache
def _hashers() -> dict[str, Any]:
    from imagededup.methods import DHash, PHash, WHash

    logging.getLogger("imagededup").setLevel(logging.WARNING)
    classes = {"PHash": PHash, "DHash": DHash, "WHash": WHash}
    return {name: cls(verbose=False) for name, cls in classes.items()}


def encode_all(img: Image.Image) -> dict[str, str]:
    """imagededup hashes of an in-memory image, as its hex strings."""
    arr = np.asarray(img.convert("RGB"))
    return {f"idd_{name}": hasher.encode_image(image_array=arr) for name, hasher in _hashers().items()}


def _pairs(name: str, queries: Sequence[_RecordLike], stored: Sequence[_RecordLike], absent: frozenset[int]):
    hasher = _hashers()[name]
    encoding = {f"c{i}": rec.extras[f"idd_{name}"] for i, rec in enumerate(stored) if i not in absent}
    encoding.update({f"q{j}": rec.extras[f"idd_{name}"] for j, rec in enumerate(queries)})
    # Defaults on purpose: max_distance_threshold=10, the library's own choice.
    found = hasher.find_duplicates(encoding_map=encoding, scores=True)
    out: dict[int, list[tuple[int, int]]] = {}
    for key, dups in found.items():
        if key.startswith("q"):
            hits = sorted((int(dist), int(other[1:])) for other, dist in dups if other.startswith("c"))
            out[int(key[1:])] = [(c, d) for d, c in hits]
    return out


def evaluate(
    queries: Sequence[_QueryLike],
    records: Sequence[_RecordLike],
    stored: Sequence[_RecordLike],
    absent: frozenset[int],
) -> dict[str, Any]:
    """Per method: recall (original among reported duplicates), recall@1 per edit kind, and pair precision."""
    report: dict[str, Any] = {}
    for name in METHOD_NAMES:
        pairs = _pairs(name, records, stored, absent)
        per_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        correct = total = 0
        for j, q in enumerate(queries):
            hits = pairs.get(j, [])
            total += len(hits)
            correct += sum(c in q.positives for c, _ in hits)
            if q.positives:
                found = any(c in q.positives for c, _ in hits)
                top1 = bool(hits) and hits[0][0] in q.positives
                per_kind[q.kind].append((found, top1))
        kinds = {
            kind: {
                "n": len(v),
                "recall": float(np.mean([f for f, _ in v])),
                "recall@1": float(np.mean([t for _, t in v])),
            }
            for kind, v in sorted(per_kind.items())
        }
        everything = [x for v in per_kind.values() for x in v]
        report[name] = {
            "per_kind": kinds,
            "recall": float(np.mean([f for f, _ in everything])),
            "recall@1": float(np.mean([t for _, t in everything])),
            "pairs": total,
            "pair_precision": correct / total if total else float("nan"),
        }
    return report
