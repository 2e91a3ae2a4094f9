"""Vector backends compared: bare FAISS exact (IndexFlatIP) vs MilvusBackend (milvus-lite, the real engine).

python -m bench.index.backends [--n 100000] [--dim 256] [--queries 200] [--milvus-index FLAT,HNSW]
    [--json OUT]

Same synthetic clustered unit vectors as bench.index.index_scale. Per backend: insert time (including
flush and index build), single-query k=10 latency p50/p95 over the queries, recall@10 against exact search
and bytes on disk (FAISS: serialised index; Milvus: the .db directory after flush).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.index.index_scale import clustered_unit_vectors, recall_at, run_header, sample_around, timed
from search.ml.index.milvus import MilvusBackend


@dataclass
class Result:
    backend: str
    n: int
    dim: int
    insert_s: float
    p50_ms: float
    p95_ms: float
    recall_at_10: float
    disk_bytes: int

    @property
    def bytes_per_vec(self) -> float:
        return self.disk_bytes / self.n


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def latencies(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int
) -> tuple[float, float, np.ndarray]:
    """(p50 ms, p95 ms, found ids (Q, k)) of one-query searches after a short warm-up."""
    for q in queries[:10]:
        search(q[None, :])
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter_ns()
        found.append(search(q[None, :])[0])
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), np.stack(found)


def bench_faiss(x: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int) -> Result:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(x.shape[1]))
    _, wall, _ = timed(lambda: index.add_with_ids(x, ids))
    p50, p95, found = latencies(lambda q: index.search(q, k)[1], queries, k)
    disk = int(faiss.serialize_index(index).nbytes)
    return Result("faiss IndexFlatIP", len(x), x.shape[1], wall, p50, p95, recall_at(found, truth), disk)


def bench_milvus(
    kind: str, x: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, root: Path
) -> Result:
    path = root / f"milvus_{kind}.db"
    backend = MilvusBackend(str(path), "bench", x.shape[1], index_type=kind)
    _, wall, _ = timed(lambda: (backend.add(ids, x), backend.flush(), backend.search(queries[:1], k)))
    p50, p95, found = latencies(lambda q: backend.search(q, k)[1], queries, k)
    backend.close()
    res = Result(f"milvus-lite {kind}", len(x), x.shape[1], wall, p50, p95, recall_at(found, truth), 0)
    res.disk_bytes = dir_bytes(path) if path.is_dir() else path.stat().st_size
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--milvus-index", type=lambda s: s.split(","), default=["FLAT", "HNSW"])
    p.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads (1, as in a web process)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    x, centres = clustered_unit_vectors(args.n, args.dim, seed=args.n)
    ids = np.arange(1, args.n + 1, dtype=np.int64) * 7
    queries = sample_around(centres, args.queries, np.random.default_rng(123))
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    truth = ids[exact.search(queries, args.k)[1]]
    del exact
    results = [bench_faiss(x, ids, queries, truth, args.k)]
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        for kind in args.milvus_index:
            results.append(bench_milvus(kind, x, ids, queries, truth, args.k, Path(tmp)))
            print(f"# {kind} done", flush=True)
    heads = ("backend", "n", "dim", "insert_s", "p50_ms", "p95_ms", "R@10", "B/vec")
    print(
        " ".join(
            f"{h:{w}}" for h, w in zip(heads, ("<22", ">8", ">4", ">9", ">7", ">7", ">6", ">7"), strict=True)
        )
    )
    for r in results:
        print(
            f"{r.backend:<22} {r.n:>8} {r.dim:>4} {r.insert_s:>9.2f} {r.p50_ms:>7.2f} {r.p95_ms:>7.2f}"
            f" {r.recall_at_10:>6.3f} {r.bytes_per_vec:>7.0f}"
        )
    if args.json:
        payload = {
            **run_header("index_backends", args),
            "rows": [asdict(r) | {"bytes_per_vec": r.bytes_per_vec} for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
