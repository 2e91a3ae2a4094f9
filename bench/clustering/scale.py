"""Scale part of bench.clustering: full runs on synthetic vectors, each size in a fresh process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from bench.clustering.data import synthetic_features
from search.ml.clusters.pipeline import ClusterConfig, ClusterModel, assign_clusters, fit_clusters

DIM = 1280  # EfficientNet-Lite feature size
NEW = 1_000


def _peak_rss_gb() -> float:
    """Peak resident memory since the last _reset_peak (VmHWM), in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux reports KiB


def _reset_peak() -> None:
    """Restart peak-RSS tracking (Linux: writing 5 to clear_refs resets VmHWM to the current RSS)."""
    Path("/proc/self/clear_refs").write_text("5")


def _fit(x: np.ndarray, cfg: ClusterConfig) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    result = fit_clusters(x, cfg)
    return result, time.perf_counter() - start, time.process_time() - cpu


def worker(n: int) -> dict[str, Any]:
    """One size: fit (cold and warm), quality vs the generator's labels, incremental assignment of 1 000."""
    start = time.perf_counter()
    x_all, truth_all = synthetic_features(n + NEW, DIM, seed=0)
    x, truth, new = x_all[:n], truth_all[:n], x_all[n:]
    out: dict[str, Any] = {
        "n": n,
        "dim": DIM,
        "features_gb": x.nbytes / 1e9,
        "generate_s": time.perf_counter() - start,
        "peak_rss_after_data_gb": _peak_rss_gb(),
    }
    cfg = ClusterConfig()
    # first fit in a fresh process pays numba JIT (umap's SGD kernel is cached on disk after its first run)
    warm_x = synthetic_features(2_000, DIM, seed=1)[0]
    _, out["cold_small_fit_s"], out["cold_small_fit_cpu_s"] = _fit(warm_x, cfg)
    _, out["warm_small_fit_s"], out["warm_small_fit_cpu_s"] = _fit(warm_x, cfg)
    _reset_peak()
    result, out["fit_s"], out["fit_cpu_s"] = _fit(x, cfg)
    out["fit_peak_rss_gb"] = _peak_rss_gb()  # includes the resident feature array
    out["timings"] = result.timings
    inliers = truth >= 0
    out["ari_inliers"] = float(adjusted_rand_score(truth[inliers], result.labels[inliers]))
    out["outlier_recall"] = float(np.mean(result.labels[~inliers] < 0)) if (~inliers).any() else None
    out["noise"] = result.stats["noise_share"]
    out["raw_noise"] = result.stats["raw_noise_share"]
    out["clusters"] = result.model.n_clusters
    out["true_clusters"] = int(truth.max()) + 1
    out["fit_points"] = int(result.in_fit_sample.sum())
    rest = n - out["fit_points"]
    out["assign_rate_per_s"] = rest / result.timings["assign"] if rest else None
    out["assign_rate_per_cpu_s"] = rest / result.timings["assign_cpu"] if rest else None
    start, cpu = time.perf_counter(), time.process_time()
    assign_clusters(result.model, new)
    out["assign_1000_s"], out["assign_1000_cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
    out["assign_share_of_fit"] = out["assign_1000_cpu_s"] / out["fit_cpu_s"]
    blob = result.model.to_bytes()
    out["model_mb"] = len(blob) / 1e6

    if n == 100_000:
        out["cold_process_assign"] = _cold_assign(result.model, new)
    if n <= 10_000:
        out["empty_numba_cache_small_fit_s"] = _empty_cache_fit()
    return out


def _empty_cache_fit() -> float:
    """Wall seconds of a 2k fit in a fresh process with an empty numba cache (first run after install)."""
    code = (
        "import time;t=time.perf_counter();from bench.clustering.data import synthetic_features;"
        "from search.ml.clusters.pipeline import ClusterConfig,fit_clusters;"
        "fit_clusters(synthetic_features(2000,1280,seed=1)[0],ClusterConfig());print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NUMBA_CACHE_DIR": tmp}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
    return float(done.stdout.strip().splitlines()[-1])


def _cold_assign(model: ClusterModel, new: np.ndarray) -> dict[str, float]:
    """What a freshly started Celery worker pays: imports, model load, first assignment of 1 000."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.npz")
        np.save(Path(tmp) / "new.npy", new)
        code = (
            "import time,json;t=time.perf_counter();import numpy as np;"
            "from search.ml.clusters.pipeline import ClusterModel,assign_clusters;i=time.perf_counter()-t;"
            f"m=ClusterModel.load('{tmp}/model.npz');l=time.perf_counter()-t-i;x=np.load('{tmp}/new.npy');"
            "s=time.perf_counter();c=time.process_time();assign_clusters(m,x);a=time.perf_counter()-s;"
            "ac=time.process_time()-c;s=time.perf_counter();c=time.process_time();assign_clusters(m,x);"
            "w=time.perf_counter()-s;wc=time.process_time()-c;print(json.dumps({'import_s':i,'load_s':l,"
            "'first_assign_s':a,'first_assign_cpu_s':ac,'second_assign_s':w,'second_assign_cpu_s':wc}))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1e6
    return 0.0


def run_scale(sizes: list[int]) -> list[dict[str, Any]]:
    """Run each size in its own process (honest peak RSS, cold numba) and print a table."""
    rows: list[dict[str, Any]] = []
    for n in sizes:
        needed = n * DIM * 4 * 1.5 / 1e9 + 2.0
        if _mem_available_gb() < needed + 4.0:  # leave room for the other jobs on this machine
            rows.append(
                {"n": n, "skipped": f"needs ~{needed:.1f} GB, {_mem_available_gb():.1f} GB available"}
            )
            print(f"scale {n}: skipped ({rows[-1]['skipped']})", flush=True)
            continue
        cmd = [sys.executable, "-m", "bench.clustering.clustering", "--scale-worker", str(n)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
            rows.append({"n": n, "failed": str(exc)[-500:]})
            print(f"scale {n}: failed: {rows[-1]['failed']}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        t = row["timings"]
        print(
            f"scale {n:>8d}: fit {row['fit_cpu_s']:7.1f} cpu-s {row['fit_s']:7.1f} wall-s "
            f"(cpu: pca {t['pca_cpu']:.1f} umap {t['umap_cpu']:.1f} hdbscan {t['hdbscan_cpu']:.1f} "
            f"map {t['map_cpu']:.1f} assign {t.get('assign_cpu', 0.0):.1f}) "
            f"fit peak RSS {row['fit_peak_rss_gb']:.2f} GB "
            f"| ARI {row['ari_inliers']:.3f} noise {row['noise']:.3f} | assign 1000: "
            f"{row['assign_1000_cpu_s']:.2f} cpu-s ({100 * row['assign_share_of_fit']:.1f}% of fit) "
            f"| 2k fit cold {row['cold_small_fit_cpu_s']:.1f} warm {row['warm_small_fit_cpu_s']:.1f} cpu-s",
            flush=True,
        )
    return rows


def project(
    rows: list[dict[str, Any]], sizes: tuple[int, ...] = (1_000_000, 10_000_000, 20_000_000)
) -> list[dict[str, Any]]:
    """Fit-on-a-sample + assign-the-rest cost at larger sizes, from the largest measured sampled run."""
    measured = [r for r in rows if r.get("assign_rate_per_cpu_s")]
    if not measured:
        return []
    base = max(measured, key=lambda r: int(r["n"]))
    t = base["timings"]
    fit_cpu = t["total_cpu"] - t["assign_cpu"]  # PCA + UMAP + HDBSCAN + map on the sample
    rate = float(base["assign_rate_per_cpu_s"])
    sample = int(base["fit_points"])
    out = []
    for n in sizes:
        assign_cpu = (n - sample) / rate
        out.append(
            {
                "n": n,
                "from_n": base["n"],
                "fit_sample": sample,
                "fit_cpu_s": fit_cpu,
                "assign_cpu_s": assign_cpu,
                "total_cpu_s": fit_cpu + assign_cpu,
                "assign_rate_per_cpu_s": rate,
                "features_gb_float32": n * DIM * 4 / 1e9,
            }
        )
        print(
            f"projection {n:>9d}: fit {fit_cpu:.0f} cpu-s on {sample} + assign {assign_cpu:.0f} cpu-s "
            f"at {rate:.0f} photos/cpu-s = {(fit_cpu + assign_cpu) / 60:.1f} cpu-min",
            flush=True,
        )
    return out
