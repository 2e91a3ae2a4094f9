"""Run presets offered by the site: a training.ml preset plus operational overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.ml import GanConfig, preset


@dataclass(frozen=True)
class RunPreset:
    """A named starting configuration; `web` presets appear on the admin page."""

    name: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    web: bool = False

    def config(self, **changes: Any) -> GanConfig:
        """The GanConfig of this preset with more fields changed."""
        return preset(self.name, **{**self.overrides, **changes})


RUN_PRESETS: dict[str, RunPreset] = {
    # Samples every 10 steps and a few FD-Lite points, so a smoke run shows progress within seconds.
    "cpu-smoke": RunPreset(
        "cpu-smoke", "CPU smoke", {"sample_every": 10, "fd_every": 100, "fd_samples": 32}, web=True
    ),
    "gpu-128": RunPreset("gpu-128", "GPU 128px", web=True),
    "gpu-256": RunPreset("gpu-256", "GPU 256px"),
    "tiny-test": RunPreset("tiny-test", "Tiny (tests)"),
}


def web_presets() -> list[RunPreset]:
    """Presets the admin page offers."""
    return [p for p in RUN_PRESETS.values() if p.web]


def run_preset(name: str) -> RunPreset:
    """The preset called name (KeyError names the choices)."""
    if name not in RUN_PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(RUN_PRESETS)}")
    return RUN_PRESETS[name]
