"""Index scale benchmark: build time, memory, single-query latency and recall@10 of the vector index.

python -m bench.index [--sizes 10000,100000] [--dim 256] [--queries 200] [--merge]

For every size it measures exact flat and HNSW through ``search.ml.index.vector.VectorIndex`` AND a bare FAISS
index of the same kind and parameters (target: wrapper <= 1.5x bare latency), bare IVF-PQ, and the app's
segment (IVF-PQ shortlist re-scored exactly from the memory-mapped floats, search.ml.index.segment) as
the memory-lean alternatives. Recall@10 is against exact search. Vectors are synthetic, L2-normalised and
clustered (many small groups, like the photos of one listing). Times are recorded twice: wall clock and CPU
time of this process, because on an oversubscribed VM wall time mostly measures waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common.paths import RESULTS as RESULTS_DIR
from bench.index.segment_rows import segment_rows
from search.ml.index import IndexConfig, VectorIndex

Searcher = Callable[[np.ndarray], np.ndarray]  # (1, d) query -> (1, k) ids
RESULTS = RESULTS_DIR / "index_scale.json"
MACHINE = "2-core x86_64 VM, 24 GiB, CPU only, shared with other jobs"


@dataclass
class Lat:
    p50_ms: float
    p99_ms: float
    cpu_p50_ms: float
    cpu_p99_ms: float
    found: np.ndarray  # (Q, k) ids or labels


@dataclass
class Row:
    size: int
    dim: int
    kind: str
    impl: str
    params: str
    build_s: float = math.nan
    build_cpu_s: float = math.nan
    bytes_per_vec: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    cpu_p50_ms: float = math.nan
    cpu_p99_ms: float = math.nan
    recall_at_10: float = math.nan
    rss_bytes_per_vec: float = math.nan
    spread: float = 1.0  # data difficulty: noise norm relative to the cluster centre
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def set_lat(self, lat: Lat, truth: np.ndarray) -> Row:
        self.p50_ms, self.p99_ms, self.cpu_p50_ms, self.cpu_p99_ms = (
            lat.p50_ms, lat.p99_ms, lat.cpu_p50_ms, lat.cpu_p99_ms
        )  # fmt: skip
        self.recall_at_10 = recall_at(lat.found, truth)
        return self


def clustered_unit_vectors(
    n: int, dim: int, seed: int, spread: float = 1.0, per_cluster: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors around n/per_cluster random centres; also returns the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // per_cluster), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return sample_around(centres, n, rng, spread), centres


def sample_around(
    centres: np.ndarray, n: int, rng: np.random.Generator, spread: float = 1.0, chunk: int = 100_000
) -> np.ndarray:
    """Points at cosine 1/sqrt(1 + spread^2) to a random centre (0.71 for spread 1), built in chunks."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(0, len(centres), m)]
        x = x + rng.standard_normal((m, dim), dtype=np.float32) * np.float32(spread / math.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def latencies(searches: list[Searcher], queries: np.ndarray) -> list[Lat]:
    """One-query latencies; indexes take turns per query so they share the same load noise."""
    for q in queries[:10]:  # warm caches and lazy allocations
        for search in searches:
            search(q[None, :])
    wall = np.zeros((len(searches), len(queries)))
    cpu = np.zeros_like(wall)
    found: list[list[np.ndarray]] = [[] for _ in searches]
    for i, q in enumerate(queries):
        for j in np.roll(np.arange(len(searches)), i):  # rotate who goes first
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            found[j].append(searches[j](q[None, :])[0])
            cpu[j, i], wall[j, i] = (time.thread_time_ns() - c0) / 1e6, (time.perf_counter_ns() - t0) / 1e6
    return [
        Lat(*(float(np.percentile(a, p)) for a in (w, c) for p in (50, 99)), np.stack(f))  # type: ignore[arg-type]
        for w, c, f in zip(wall, cpu, found, strict=True)
    ]


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def hnsw_graph_bytes(index: Any) -> int:
    hnsw = index.hnsw
    return int(hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8)


def _add(index: Any, ids: np.ndarray | None, x: np.ndarray) -> Any:
    if ids is None:
        index.add(x)  # bare FAISS
    else:
        index.add(ids, x)
    return index


def wrapper_row(kind: str, ids: np.ndarray, x: np.ndarray, cfg: IndexConfig) -> tuple[VectorIndex, Row]:
    """Build through VectorIndex with a forced kind; the row has build time and memory."""
    rss0 = rss_bytes()
    index, wall, cpu = timed(lambda: _add(VectorIndex(cfg, kind), ids, x))
    row = Row(len(ids), cfg.dim, kind, "wrapper", params_of(kind, cfg), build_s=wall, build_cpu_s=cpu)
    row.rss_bytes_per_vec = (rss_bytes() - rss0) / len(ids)
    return index, row


def params_of(kind: str, cfg: IndexConfig) -> str:
    return "IndexFlatIP" if kind == "flat" else f"M={cfg.hnsw_m} efC={cfg.ef_construction} ef={cfg.ef_search}"


def bare_index(kind: str, x: np.ndarray, cfg: IndexConfig) -> Any:
    if kind == "flat":
        return _add(faiss.IndexFlatIP(cfg.dim), None, x)
    index = faiss.IndexHNSWFlat(x.shape[1], cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = cfg.ef_construction, cfg.ef_search
    return _add(index, None, x)


def compare(kind: str, ids: np.ndarray, x: np.ndarray, cfg: IndexConfig, ctx: dict[str, Any]) -> list[Row]:
    """Wrapper vs bare FAISS of the same kind and parameters, latencies measured interleaved."""
    n, k, args = len(ids), ctx["k"], ctx["args"]
    faiss.omp_set_num_threads(args.build_threads)
    wrapper, wrow = wrapper_row(kind, ids, x, cfg)
    brow = Row(n, cfg.dim, kind, "bare", params_of(kind, cfg))
    if kind == "flat" or n <= args.bare_build_max:
        bare, brow.build_s, brow.build_cpu_s = timed(lambda: bare_index(kind, x, cfg))
    else:
        bare, brow.notes = wrapper._faiss, "bare = the wrapper's own FAISS graph (build not repeated)"
    brow.bytes_per_vec = cfg.dim * 4.0 + (hnsw_graph_bytes(bare) / n if kind == "hnsw" else 0.0)
    faiss.omp_set_num_threads(args.search_threads)
    wlat, blat = latencies(
        [lambda q: wrapper.search(q, k)[1], lambda q: bare.search(q, k)[1]], ctx["queries"]
    )
    wrow.set_lat(wlat, ctx["truth"]).bytes_per_vec = wrapper.nbytes() / n  # after search: includes caches
    rows = [wrow, brow.set_lat(blat, ctx["truth_labels"])]
    if kind == "hnsw":
        rows += ef_sweep(wrapper, ctx)
    return rows


def ef_sweep(index: VectorIndex, ctx: dict[str, Any]) -> list[Row]:
    """Recall/latency of the same wrapper graph at other efSearch values (no rebuild)."""
    rows, c = [], index.config
    for ef in ctx["args"].ef_sweep:
        index.set_ef_search(ef)
        (lat,) = latencies([lambda q: index.search(q, ctx["k"])[1]], ctx["queries"])
        row = Row(len(index), c.dim, "hnsw", "wrapper", f"M={c.hnsw_m} efC={c.ef_construction} ef={ef}")
        row.bytes_per_vec, row.notes = index.nbytes() / len(index), "ef sweep on the graph above"
        rows.append(row.set_lat(lat, ctx["truth"]))
    index.set_ef_search(c.ef_search)
    return rows


def ivfpq_rows(x: np.ndarray, ctx: dict[str, Any]) -> list[Row]:
    """Bare IVF-PQ, nlist ~ 2 sqrt(n) in [64, 1024] (2-core k-means budget), 8-bit codes of m bytes."""
    n, dim = x.shape
    nlist = int(min(1024, max(64, 2 ** round(math.log2(2 * math.sqrt(n))))))
    args, rows = ctx["args"], []
    for m in args.pq_bytes:
        faiss.omp_set_num_threads(args.build_threads)
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = index.pq.cp.niter = 10  # k-means budget for 2 cores (default 25 for PQ)
        sample = x[np.random.default_rng(1).choice(n, min(n, max(20_000, 40 * nlist)), replace=False)]
        _, wall, cpu = timed(lambda index=index, sample=sample: (index.train(sample), index.add(x)))
        bpv = faiss.serialize_index(index).nbytes / n
        faiss.omp_set_num_threads(args.search_threads)
        for nprobe in args.nprobe:
            index.nprobe = nprobe
            (lat,) = latencies([lambda q, index=index: index.search(q, ctx["k"])[1]], ctx["queries"])
            params = f"nlist={nlist} m={m}x8bit nprobe={nprobe}"
            row = Row(n, dim, "ivfpq", "bare", params, build_s=wall, build_cpu_s=cpu, bytes_per_vec=bpv)
            rows.append(row.set_lat(lat, ctx["truth_labels"]))
    return rows


def bench_size(n: int, args: argparse.Namespace) -> list[Row]:
    """All rows for one database size."""
    x, centres = clustered_unit_vectors(n, args.dim, seed=n, spread=args.spread)
    ids = np.arange(1, n + 1, dtype=np.int64) * 7  # non-contiguous ids like real primary keys after deletes
    queries = sample_around(centres, args.queries, np.random.default_rng(123), args.spread)
    cfg = IndexConfig(
        dim=args.dim, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=args.ef
    )
    faiss.omp_set_num_threads(args.build_threads)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    truth_labels = exact.search(queries, args.k)[1]  # (Q, k) ground truth by exact batch search
    del exact
    ctx = {"k": args.k, "queries": queries, "truth_labels": truth_labels, "truth": ids[truth_labels]}
    ctx["args"] = args
    rows: list[Row] = []
    for kind in ("flat", "hnsw"):
        if kind in args.kinds and (kind == "flat" or n <= args.hnsw_max):
            rows += compare(kind, ids, x, cfg, ctx)
    if "ivfpq" in args.kinds:
        rows += ivfpq_rows(x, ctx)
    if "segment" in args.kinds:
        rows += segment_rows(ids, x, cfg, ctx)
    for row in rows:
        row.spread = args.spread
    return rows


def memory_at_dim(dim: int, n: int, args: argparse.Namespace) -> list[Row]:
    """Bytes/vector and build time at another dimensionality (e.g. raw 1280-d EfficientNet-Lite0)."""
    x, _ = clustered_unit_vectors(n, dim, seed=7)
    ids = np.arange(n, dtype=np.int64)
    cfg = IndexConfig(dim=dim, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=args.ef)
    faiss.omp_set_num_threads(args.build_threads)
    rows = []
    for kind in ("flat", "hnsw"):
        index, row = wrapper_row(kind, ids, x, cfg)
        row.bytes_per_vec, row.notes = index.nbytes() / n, "memory only"
        rows.append(row)
    return rows


def overhead(rows: list[Row], row: Row, attr: str) -> float:
    """Wrapper latency / bare latency for the same size, kind and parameters."""
    for bare in rows:
        same = (bare.size, bare.dim, bare.kind, bare.params, bare.spread) == (
            row.size, row.dim, row.kind, row.params, row.spread
        )  # fmt: skip
        if row.impl == "wrapper" and bare.impl == "bare" and same:
            return float(getattr(row, attr) / getattr(bare, attr))
    return math.nan


_COLUMNS = [  # (header, Row attribute, format)
    ("size", "size", ">8"),
    ("dim", "dim", ">5"),
    ("sprd", "spread", ">4.1f"),
    ("kind", "kind", "<6"),
    ("impl", "impl", "<8"),
    ("params", "params", "<30"),
    ("build_s", "build_s", ">8.2f"),
    ("cpu_s", "build_cpu_s", ">7.2f"),
    ("B/vec", "bytes_per_vec", ">6.0f"),
    ("cpu50ms", "cpu_p50_ms", ">8.3f"),
    ("cpu99ms", "cpu_p99_ms", ">8.3f"),
    ("wall50", "p50_ms", ">7.3f"),
    ("wall99", "p99_ms", ">7.3f"),
    ("R@10", "recall_at_10", ">6.3f"),
]


def print_table(rows: list[Row]) -> None:
    """Aligned table; ovh = wrapper / bare CPU p50 for the same size, kind and parameters."""
    print(" ".join(f"{h:{f.split('.')[0]}}" for h, _, f in _COLUMNS), f"{'ovh':>5}")
    for r in rows:
        cells = " ".join(f"{getattr(r, a):{f}}" for _, a, f in _COLUMNS)
        print(cells, f"{overhead(rows, r, 'cpu_p50_ms'):>5.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    p.add_argument("--sizes", type=ints, default=[10_000, 100_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--spread", type=float, default=1.0, help="cluster noise; larger = harder for ANN")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--kinds", type=lambda s: s.split(","), default=["flat", "hnsw", "ivfpq", "segment"])
    p.add_argument("--hnsw-m", type=int, default=IndexConfig.hnsw_m)
    p.add_argument("--ef-construction", type=int, default=IndexConfig.ef_construction)
    p.add_argument("--ef", type=int, default=IndexConfig.ef_search)
    p.add_argument("--ef-sweep", type=ints, default=[32, 64, 256])
    p.add_argument("--nprobe", type=ints, default=[16, 64])
    p.add_argument(
        "--rescore", type=ints, default=[64, 256], help="segment: shortlist rows re-scored exactly"
    )
    p.add_argument("--pq-bytes", type=ints, default=[32, 64], help="IVF-PQ code bytes per vector (m)")
    p.add_argument("--hnsw-max", type=int, default=200_000, help="skip HNSW above this size (2-core budget)")
    p.add_argument("--bare-build-max", type=int, default=100_000, help="larger: bare HNSW reuses the graph")
    p.add_argument("--mem-dims", type=ints, default=[1280], help="extra dims for bytes/vector (10k vectors)")
    p.add_argument("--build-threads", type=int, default=1, help="1: OpenMP barriers stall on a busy VM")
    p.add_argument("--search-threads", type=int, default=1, help="single queries: 1, as in a web process")
    p.add_argument("--merge", action="store_true", help="keep rows of other size/dim/kind in --out")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for n in args.sizes:
        rows += bench_size(n, args)
        print(f"# size {n} done after {time.perf_counter() - t0:.0f}s", flush=True)
    for dim in args.mem_dims:
        rows += memory_at_dim(dim, 10_000, args)
    if args.merge and args.out.exists():
        done = {(r.size, r.dim, r.kind, r.spread) for r in rows}
        old = [Row(**r) for r in json.loads(args.out.read_text())["rows"]]
        rows = [r for r in old if (r.size, r.dim, r.kind, r.spread) not in done] + rows
    print_table(rows)
    write_json(args, rows, time.perf_counter() - t0)


def run_header(benchmark: str, args: argparse.Namespace) -> dict[str, Any]:
    """The fields an index benchmark's JSON starts with: which one, when, on what machine, load and args."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{MACHINE}; {platform.machine()} {os.cpu_count()} cpus; faiss {faiss.__version__}",
        "load_average": os.getloadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def write_json(args: argparse.Namespace, rows: list[Row], total_s: float) -> None:
    payload = {
        **run_header("index_scale", args),
        "total_s": total_s,
        "total_cpu_s": time.process_time(),
        "rows": [asdict(r) for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, allow_nan=True))
    print(f"wrote {args.out} ({total_s:.0f}s)")


if __name__ == "__main__":
    main()
