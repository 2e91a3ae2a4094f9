"""Clustering benchmark: room-type quality on the house photos, incremental vs refit, and scale.

    python -m bench.clustering [--quick] [--skip-houses] [--skip-scale] [--sizes 10000,100000,1000000]

Houses (Ahmed & Moustafa, IJCCI 2016): clusters vs room type (ARI, NMI, noise share) per encoder and
setting; k-NN-5 room purity of the features; incremental assignment of a 20 % hold-out vs a full refit.
Scale: synthetic encoder-like vectors, each size in a fresh process (peak RSS, cold vs warm numba).
Writes bench/results/clustering.json (--quick: clustering_quick.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bench.clustering.data import HIST_HOG, Houses, house_features, load_houses
from bench.clustering.scale import project, run_scale
from bench.common.paths import RESULTS as RESULTS_DIR
from search.ml.clusters.pipeline import ClusterConfig, assign_clusters, config_to_dict, fit_clusters

RESULTS = RESULTS_DIR / "clustering.json"
ENCODERS = ("effnet-lite2", "effnet-lite0", HIST_HOG)
DEFAULT = ClusterConfig()
SETTINGS: dict[str, ClusterConfig] = {
    "default": DEFAULT,
    "raw-hdbscan": replace(DEFAULT, noise_reassign="none", outlier_z=None),
    "pca10": replace(DEFAULT, pca_dim=10),
    "no-pca": replace(DEFAULT, pca_dim=0),
    "umap10-nn30": replace(DEFAULT, umap_dim=10, umap_neighbors=30),
    "mcs10": replace(DEFAULT, min_cluster_size=10),
    "mcs40": replace(DEFAULT, min_cluster_size=40),
    "leaf": replace(DEFAULT, cluster_selection_method="leaf"),
}
QUICK_SETTINGS = ("default", "raw-hdbscan", "pca10")


def knn_purity(feats: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Mean share of each photo's k nearest neighbours (cosine) with the same label."""
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean(labels[nn] == labels[:, None]))


def quality(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ARI / NMI with noise as its own class, ARI over clustered photos only, noise share, clusters."""
    clustered = labels >= 0
    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "ari_clustered": float(adjusted_rand_score(truth[clustered], labels[clustered])),
        "noise": float(np.mean(~clustered)),
        "clusters": int(labels.max()) + 1,
    }


def houses_quality(data: Houses, feats: dict[str, np.ndarray], quick: bool) -> list[dict[str, Any]]:
    """One row per encoder x setting (the default over three seeds)."""
    rows = []
    truth = data.rooms[data.keep]
    for name, x in feats.items():
        for setting in QUICK_SETTINGS if quick else SETTINGS:
            seeds = (0, 1, 2) if setting == "default" else (0,)
            runs = []
            for seed in seeds:
                start = time.perf_counter()
                result = fit_clusters(x[data.keep], replace(SETTINGS[setting], seed=seed))
                runs.append(
                    {
                        **quality(truth, result.labels),
                        "raw_noise": result.stats["raw_noise_share"],
                        "seconds": time.perf_counter() - start,
                        "cpu_s": result.timings["total_cpu"],
                    }
                )
            row = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            row.update(encoder=name, setting=setting, seeds=len(seeds), ari_min=min(r["ari"] for r in runs))
            rows.append(row)
            print(
                f"  {name:13s} {setting:12s} ARI {row['ari']:.3f} NMI {row['nmi']:.3f} "
                f"noise {row['noise']:.3f} (raw {row['raw_noise']:.3f}) k={row['clusters']:.0f} "
                f"{row['seconds']:.1f}s wall {row['cpu_s']:.1f}s cpu",
                flush=True,
            )
    return rows


def match_labels(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """Hungarian matching of cluster labels of run a to run b by member overlap (noise maps to noise)."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    overlap = np.zeros((max(ka, 1), max(kb, 1)), dtype=np.int64)
    both = (a >= 0) & (b >= 0)
    np.add.at(overlap, (a[both], b[both]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}
    mapping[-1] = -1
    return mapping


def incremental_vs_refit(x: np.ndarray, cfg: ClusterConfig, splits: int) -> dict[str, float]:
    """Hold out 20 %, fit the rest, assign the hold-out, refit on all: share placed as the refit places it."""
    agree, stable, assign_s, fit_s, held_n = [], [], [], [], []
    refit = fit_clusters(x, cfg).labels  # the full refit does not depend on the split
    for split in range(splits):
        held = np.random.default_rng(100 + split).random(len(x)) < 0.2
        held_n.append(int(held.sum()))
        first = fit_clusters(x[~held], cfg)
        fit_s.append(first.timings["total_cpu"])
        start = time.process_time()
        assigned, _, _ = assign_clusters(first.model, x[held])
        assign_s.append(time.process_time() - start)
        mapping = match_labels(first.labels, refit[~held])
        translate = np.array([mapping.get(int(label), -2) for label in assigned])  # -2: no counterpart
        agree.append(float(np.mean(translate == refit[held])))
        kept = np.array([mapping.get(int(label), -2) for label in first.labels])
        stable.append(float(np.mean(kept == refit[~held])))
    return {
        "agreement": float(np.mean(agree)),
        "agreement_min": float(np.min(agree)),
        "fitted_points_agreement": float(np.mean(stable)),
        "splits": splits,
        "held_out": float(np.mean(held_n)),
        "assign_cpu_s": float(np.mean(assign_s)),
        "fit_cpu_s": float(np.mean(fit_s)),
    }


def run_houses(quick: bool, encoders: list[str], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Quality table, feature purity and incremental agreement; rows of encoders not run are kept."""
    data = load_houses()
    if data is None:
        print("houses: ../shared/data is absent, skipped")
        return previous
    print(
        f"houses: {len(data.paths)} photos, {int(data.keep.sum())} distinct "
        f"({data.dup_groups} groups of copies, {data.ambiguous} copies with another room label)"
    )
    out = previous or {"encoders": [], "quality": [], "incremental": {}}
    out.update(photos=len(data.paths), distinct=int(data.keep.sum()), copy_groups=data.dup_groups)
    feats = {}
    for name in encoders:
        x, rate = house_features(name, data.paths)
        feats[name] = x
        purity = knn_purity(x[data.keep], data.rooms[data.keep])
        row = {"encoder": name, "dim": int(x.shape[1]), "extract_photos_per_s": rate, "knn5_purity": purity}
        out["encoders"] = [r for r in out["encoders"] if r["encoder"] != name] + [row]
        print(f"  {name:13s} dim {x.shape[1]:5d} purity@5 {purity:.3f} ({rate:.1f} photos/s when extracted)")
    rows = houses_quality(data, feats, quick)
    out["quality"] = [r for r in out["quality"] if r["encoder"] not in feats] + rows
    for name in feats:
        if name != HIST_HOG:
            out["incremental"][name] = incremental_vs_refit(
                feats[name][data.keep], DEFAULT, 2 if quick else 5
            )
            print(f"  incremental vs refit ({name}, default): {out['incremental'][name]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer settings/splits; 10k scale only")
    parser.add_argument("--skip-houses", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated encoders for houses")
    parser.add_argument(
        "--sizes", default=None, help="comma-separated scale sizes (default 10000,100000,1000000)"
    )
    parser.add_argument("--scale-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_worker:
        from bench.clustering.scale import worker

        print(json.dumps(worker(args.scale_worker)))
        return
    out: dict[str, Any] = {
        "machine": "2-core x86_64 VM, 24 GiB, CPU only, shared with other jobs",
        "default_config": config_to_dict(DEFAULT),
        "argv": sys.argv[1:],
    }
    # quick runs write their own file so they never overwrite the full results
    results = RESULTS.with_name("clustering_quick.json") if args.quick else RESULTS
    if results.exists():  # keep sections this run skips
        out = {**json.loads(results.read_text()), **out}
    if not args.skip_houses:
        out["houses"] = run_houses(args.quick, args.encoders.split(","), out.get("houses"))
    if not args.skip_scale:
        sizes = args.sizes or ("10000" if args.quick else "10000,100000,1000000")
        ran = run_scale([int(s) for s in sizes.split(",")])
        kept = [r for r in out.get("scale", []) if r["n"] not in {r2["n"] for r2 in ran}]
        out["scale"] = sorted(kept + ran, key=lambda r: int(r["n"]))
        out["projection"] = project(out["scale"])
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(out, indent=2))
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
