"""Model files never run code on load: torch.load(weights_only=True) everywhere, no pickle, no np pickles."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

from search.ml.encoders.builtin import torchvision_backbone
from tests.evil_pickle import CODE_RAN, Evil
from tests.shared_data import REPO_ROOT

SOURCES = ["flatsite", "search", "training", "bench"]


def _unsafe(owner: str, attr: str, kwargs: dict[str | None, str]) -> bool:
    if owner == "torch" and attr == "load":
        return kwargs.get("weights_only") != "True"
    if owner in ("np", "numpy") and attr == "load":
        return kwargs.get("allow_pickle") == "True"
    return (owner, attr) in {
        ("torch.jit", "load"),
        ("pickle", "load"),
        ("pickle", "loads"),
        ("joblib", "load"),
    }


def _unsafe_loads(path: Path, root: Path = REPO_ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = ast.unparse(node.func.value)
        kwargs = {k.arg: ast.unparse(k.value) for k in node.keywords}
        call = f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node.func)}"
        if _unsafe(owner, node.func.attr, kwargs):
            found.append(call)
    return found


def test_no_source_file_loads_a_model_in_a_way_that_can_run_code() -> None:
    files = [p for root in SOURCES for p in (REPO_ROOT / root).rglob("*.py")]
    assert len(files) > 50  # the scan really saw the code base
    assert [call for path in files for call in _unsafe_loads(path)] == []


def test_the_scan_spots_an_unsafe_load(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("import torch\nx = torch.load('m.pt')\ny = torch.load('m.pt', weights_only=True)\n")
    assert [c.split()[0] for c in _unsafe_loads(path, tmp_path)] == ["probe.py:2"]


def test_encoder_checkpoint_that_would_execute_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torchvision_backbone("resnet50-skip", path)
    assert CODE_RAN == []
