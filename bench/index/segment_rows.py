"""index_scale rows for the app's segment: an IVF-PQ shortlist re-scored exactly from mapped floats."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from search.ml.index import IndexConfig
from search.ml.index.segment import Segment, segment_write


def segment_rows(ids: np.ndarray, x: np.ndarray, cfg: IndexConfig, ctx: dict[str, Any]) -> list[Any]:
    """One row per (nprobe, rescore): the app's base segment as search.ml.index.segment builds it."""
    from bench.index.index_scale import Row, latencies, timed

    n, dim = x.shape
    args, rows = ctx["args"], []
    none = np.empty(0, np.int64)
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        path = Path(tmp) / "base.seg"
        base = dataclasses.replace(cfg, exact_threshold=0)  # always with a shortlist, as a base >= 50k is
        chunks = ((ids[lo : lo + 65_536], x[lo : lo + 65_536]) for lo in range(0, n, 65_536))
        _, wall, cpu = timed(lambda: segment_write(path, chunks, n, base))
        disk = path.stat().st_size
        for nprobe in args.nprobe:
            for rescore in args.rescore:
                seg = Segment(path)
                seg.config = dataclasses.replace(base, nprobe=nprobe, rescore=rescore)
                seg.ann.nprobe = min(nprobe, seg.ann.nlist)

                def search(q: np.ndarray, seg: Segment = seg) -> np.ndarray:
                    return np.asarray(seg.ids)[seg.search(q, ctx["k"], none)[1]]

                (lat,) = latencies([search], ctx["queries"])
                pq = f"m={seg.ann.pq.M}x{seg.ann.pq.nbits}bit"
                params = f"nlist={seg.ann.nlist} {pq} nprobe={nprobe} rescore={rescore}"
                row = Row(n, dim, "segment", "app", params, build_s=wall, build_cpu_s=cpu)
                row.bytes_per_vec = seg.nbytes_resident() / n  # in the process; the floats are mapped
                row.extra = {"disk_bytes_per_vec": disk / n, "mapped_float_bytes_per_vec": 4 * dim}
                rows.append(row.set_lat(lat, ctx["truth"]))
    return rows
