"""Where the benches read and write: the repository root and bench/results/ (git-ignored, shared by all)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# One results folder for every question, so the descriptor caches survive the move to one folder each.
RESULTS = ROOT / "bench" / "results"
