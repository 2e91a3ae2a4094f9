"""Every process limits its BLAS and OpenCV threads; Celery workers lower their CPU priority."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A fresh interpreter set up like a web or worker process (django.setup runs every AppConfig.ready).
PROBE = """
import json, os, cv2, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flatsite.settings")
django.setup()
from threadpoolctl import threadpool_info
blas = sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
report = {"blas": blas, "opencv": cv2.getNumThreads(), "nice_before": os.nice(0)}
if os.environ.get("PROBE_WORKER"):
    from flatsite.celery import worker_priority
    report["nice_after"] = worker_priority()
print(json.dumps(report))
"""


def _probe(**env: str) -> dict[str, object]:
    environ = {**os.environ, "DEBUG": "1", **env}
    out = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_process_runs_blas_and_opencv_on_the_configured_thread_count(threads: str) -> None:
    report = _probe(FLATSITE_BLAS_THREADS=threads)
    assert report["blas"] == [int(threads)]  # numpy's OpenBLAS is loaded by then
    assert report["opencv"] == int(threads)


def test_the_worker_start_hook_adds_the_configured_niceness() -> None:
    report = _probe(PROBE_WORKER="1", FLATSITE_WORKER_NICE="3")
    assert report["nice_after"] == min(19, int(report["nice_before"]) + 3)


def test_a_niceness_of_zero_leaves_the_worker_priority_alone() -> None:
    report = _probe(PROBE_WORKER="1", FLATSITE_WORKER_NICE="0")
    assert report["nice_after"] == report["nice_before"]
