"""``VectorBackend`` on Milvus through pymilvus ``MilvusClient``: the scale-out store (ARCHITECTURE.md).

The same code talks to milvus-lite (``uri`` = a local ``.db`` path: the real engine embedded, used by the
tests and the bench) and to a Milvus cluster (``uri`` = ``http://host:19530``). One collection holds
``id`` (INT64 primary key, ours, not auto) and ``vec`` (FLOAT_VECTOR, dim) with an inner-product index;
``add`` is an upsert, so replacing a vector is one call. Strong consistency: a search sees every write that
returned before it, like the FAISS backends (a cluster may relax this per call for throughput).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from search.ml.index.backend import check_unit_rows
from search.ml.index.config import as_ids, as_matrix

INDEX_TYPES = {  # index type -> (build params, search params); all supported by milvus-lite and a cluster
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 32}),
    "HNSW": ({"M": 32, "efConstruction": 80}, {"ef": 128}),
}
_BATCH = 2_000  # rows per upsert / get: keeps each gRPC message far below Milvus's 64 MiB limit at dim 1280
_PAD_SCORE = np.float32(-np.inf)


class MilvusBackend:
    """Vector store in one Milvus collection (see module doc)."""

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        *,
        index_type: str = "FLAT",
        norm_tolerance: float = 1e-3,
        client: MilvusClient | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if index_type not in INDEX_TYPES:
            raise ValueError(
                f"unknown Milvus index type {index_type!r}; expected one of {sorted(INDEX_TYPES)}"
            )
        self.dim, self.collection, self.index_type = dim, collection, index_type
        self._tolerance = norm_tolerance
        self._client = client or MilvusClient(uri)
        if self._client.has_collection(collection):
            self._check_existing()
        else:
            self._create()

    def _create(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self._client.prepare_index_params()
        build, _ = INDEX_TYPES[self.index_type]
        params.add_index("vec", index_type=self.index_type, metric_type="IP", params=build)
        self._client.create_collection(
            self.collection, schema=schema, index_params=params, consistency_level="Strong"
        )

    def _check_existing(self) -> None:
        fields = self._client.describe_collection(self.collection)["fields"]
        vec = next((f for f in fields if f["name"] == "vec"), None)
        stored = None if vec is None else int(vec["params"]["dim"])
        if stored != self.dim:
            raise ValueError(f"Milvus collection {self.collection!r} holds dim {stored}, not {self.dim}")
        self._client.load_collection(self.collection)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace (N, dim) L2-normalised vectors; the last of duplicate ids in one call wins."""
        ids, vecs = check_unit_rows(ids, vectors, self.dim, self._tolerance)
        _, last = np.unique(ids[::-1], return_index=True)  # Milvus rejects duplicate keys in one upsert
        keep = np.sort(ids.size - 1 - last)
        ids, vecs = ids[keep], vecs[keep]
        for start in range(0, ids.size, _BATCH):
            rows = [
                {"id": int(i), "vec": v}
                for i, v in zip(ids[start : start + _BATCH], vecs[start : start + _BATCH], strict=True)
            ]
            self._client.upsert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones ignored); returns how many were present."""
        ids = np.unique(as_ids(ids))
        present = np.fromiter(self._rows(ids).keys(), dtype=np.int64)
        if present.size:
            self._client.delete(self.collection, ids=present.tolist())
        return int(present.size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product, best first, padded with -inf / -1."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = as_matrix(queries, self.dim, "queries")
        scores = np.full((q.shape[0], k), _PAD_SCORE, np.float32)
        found = np.full((q.shape[0], k), -1, np.int64)
        if q.shape[0] == 0:
            return scores, found
        _, search_params = INDEX_TYPES[self.index_type]
        hits = self._client.search(
            self.collection,
            data=list(q),
            limit=k,
            anns_field="vec",
            search_params={"metric_type": "IP", "params": search_params},
            output_fields=[],
        )
        for row, row_hits in enumerate(hits):
            n = len(row_hits)
            found[row, :n] = [h["id"] for h in row_hits]
            scores[row, :n] = [h["distance"] for h in row_hits]
        return scores, found

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Stored (N, dim) vectors of ``ids``; KeyError if one is unknown."""
        ids = as_ids(ids)
        rows = self._rows(np.unique(ids))
        missing = [int(i) for i in ids if int(i) not in rows]
        if missing:
            raise KeyError(f"ids not in Milvus collection {self.collection!r}: {missing[:10]}")
        if ids.size == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([rows[int(i)] for i in ids]).astype(np.float32, copy=False)

    def _rows(self, ids: np.ndarray) -> dict[int, np.ndarray]:
        """id -> stored vector for the ids that exist."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, ids.size, _BATCH):
            chunk = ids[start : start + _BATCH].tolist()
            got: list[dict[str, Any]] = self._client.get(self.collection, ids=chunk, output_fields=["vec"])
            out.update({int(r["id"]): np.asarray(r["vec"], dtype=np.float32) for r in got})
        return out

    def __len__(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def flush(self) -> None:
        """Seal the growing segments so a new client (or a restart) sees every write."""
        self._client.flush(self.collection)

    def close(self) -> None:
        """Release the client connection (milvus-lite: stops the embedded server when the last one goes)."""
        self._client.close()
