"""The GAN side of bench.gan: train a run for a fixed CPU budget, or describe a given checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.ml import (
    GanConfig,
    GanEncoder,
    StepStats,
    config_from_dict,
    config_to_dict,
    load_checkpoint,
    phase_at,
    preset,
    train,
)
from training.ml.encoder_adapter import GanSearchEncoder, build_gan_encoder
from training.ml.gan import build_models

# A wall-clock cap on top of the CPU budget, so a heavily shared machine cannot stretch the run unboundedly.
WALL_FACTOR = 1.5
PRESET = "cpu-smoke"  # 4 -> 32 px, latent 64, batch 16: the preset bench.gan.gan_train measures
_LAST_ROWS = 50


def budget_config(seed: int, n_photos: int) -> GanConfig:
    """cpu-smoke with an open-ended step count (the budget stops it) and no samples or FD-Lite on the way."""
    return preset(
        PRESET,
        seed=seed,
        total_steps=10_000_000,
        checkpoint_every=500,
        keep_checkpoints=2,
        sample_every=0,
        fd_every=0,
        num_workers=0,
        data={"source": "../shared/data/houses", "photos": n_photos},
    )


def train_budget(paths: list[Path], minutes: float, seed: int, out_root: Path) -> tuple[Path, dict[str, Any]]:
    """Train on the photos until `minutes` of process CPU time (or WALL_FACTOR x that in wall) are spent."""
    cfg = budget_config(seed, len(paths))
    run_dir = out_root / f"gan_verdict_run_{time.strftime('%Y%m%d-%H%M%S')}_seed{seed}"
    budget_s = minutes * 60.0
    t0, c0 = time.perf_counter(), time.process_time()
    stop_reason: list[str] = []

    def should_stop() -> bool:
        if time.process_time() - c0 >= budget_s:
            stop_reason.append("cpu budget")
        elif time.perf_counter() - t0 >= WALL_FACTOR * budget_s:
            stop_reason.append("wall cap")
        return bool(stop_reason)

    last_print = [0.0]

    def on_step(st: StepStats) -> None:
        now = time.perf_counter()
        if now - last_print[0] >= 60.0:
            last_print[0] = now
            print(
                f"  train step {st.step} {st.resolution}px a={st.alpha:.2f} "
                f"D {st.loss_d:.3f} G {st.loss_g:.3f} "
                f"enc {st.loss_enc:.3f} latent {st.extra.get('enc_latent', float('nan')):.3f} "
                f"{st.images_per_s:.0f} img/s, cpu {time.process_time() - c0:.0f}/{budget_s:.0f} s",
                flush=True,
            )

    result = train(cfg, paths, run_dir, on_step=on_step, should_stop=should_stop, device="cpu")
    if result.last_checkpoint is None:
        raise RuntimeError("training wrote no checkpoint")
    summary = {
        "preset": PRESET,
        "budget_cpu_minutes": minutes,
        "stopped_by": stop_reason[0] if stop_reason else "steps",
        "cpu_s": time.process_time() - c0,
        "wall_s": time.perf_counter() - t0,
        **_last_losses(result.history),
    }
    return result.last_checkpoint, summary


def _last_losses(history: list[dict[str, Any]]) -> dict[str, Any]:
    rows = history[-_LAST_ROWS:]
    keys = ("loss_d", "loss_g", "gp", "wasserstein", "enc_latent", "enc_image", "enc_feature", "images_per_s")
    out: dict[str, Any] = {
        f"last{_LAST_ROWS}_{k}": float(np.mean([r[k] for r in rows if k in r])) for k in keys
    }
    first = [r["enc_latent"] for r in history[:_LAST_ROWS] if "enc_latent" in r]
    out[f"first{_LAST_ROWS}_enc_latent"] = float(np.mean(first)) if first else float("nan")
    return out


def _reached(path: Path) -> tuple[GanConfig, int, int, float]:
    # As training.ml.embed does: the resolution and fade the last trained step used.
    ck = load_checkpoint(path)
    cfg = config_from_dict(ck["config"])
    step = int(ck["step"])
    res, alpha, _ = phase_at(cfg, max(step - 1, 0))
    return cfg, step, res, alpha


def describe_checkpoint(path: Path) -> dict[str, Any]:
    """Step, config and the resolution/fade the checkpoint's encoder runs at."""
    cfg, step, res, alpha = _reached(path)
    return {
        "checkpoint": str(path),
        "steps": step,
        "resolution": res,
        "alpha": alpha,
        "config": config_to_dict(cfg),
    }


def gan_encoder(path: Path) -> GanSearchEncoder:
    """The checkpoint's encoder as the app builds it for indexing (training.ml.encoder_adapter, CPU)."""
    return build_gan_encoder("gan-verdict", path, torch.device("cpu"))


def untrained_encoder(path: Path) -> GanSearchEncoder:
    """Control: the run's encoder at step 0 (its seeded initial weights), at the checkpoint's resolution."""
    cfg, _, res, alpha = _reached(path)
    net = build_models(cfg)[2]
    cpu = torch.device("cpu")
    return GanSearchEncoder("gan-step0", GanEncoder(net, cfg, res, alpha, cpu, "gan-step0"), cpu)
