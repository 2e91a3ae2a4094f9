"""An admin starts a CPU smoke run, watches it live in chromium, cancels it and resumes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flatsite.core import accounts
from search.models import Job
from tests.browser.conftest import PASSWORD, chromium_page, log_in, web_accounts
from tests.factories import ListingFactory
from tests.processes import ROOT
from tests.training.conftest import stored_photo
from training.models import TrainingMetric, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

PAGE = "[data-run-page]"
# Records every step the page shows and flags a reload, so the test can tell live pushes from refreshes.
WATCH_STEPS = """
window.__steps = [];
window.__noReload = true;
const root = document.querySelector("[data-run-page]");
new MutationObserver(() => window.__steps.push(Number(root.getAttribute("data-step"))))
  .observe(root, {attributes: true, attributeFilter: ["data-step"]});
"""


def _admin(settings: Any) -> Any:
    web_accounts(settings)
    return accounts.user_create(username="ada", password=PASSWORD, role="admin")


def _step(page: Any) -> int:
    return int(page.get_attribute(PAGE, "data-step"))


def _watch_live_progress(page: Any, past: int) -> None:
    """Wait for the step counter, the loss chart and the sample grid to move past `past` without a reload."""
    page.evaluate(WATCH_STEPS)
    page.wait_for_function(
        f"Number(document.querySelector('{PAGE}').getAttribute('data-step')) >= {past + 12}"
    )
    page.wait_for_function(
        "Number(document.querySelector('[data-chart=losses]').getAttribute('data-points')) >= 12"
    )
    # Sample grids come every 10 steps in the smoke preset; the newest must have been drawn.
    page.wait_for_function(
        f"(() => {{ const img = document.querySelector('[data-testid=sample-grid]');"
        f" return !img.hidden && Number(img.dataset.step) > {past}"
        " && img.complete && img.naturalWidth > 0; })()"
    )
    # On a fast machine the first 12 steps can fit between two pushes (a slow client gets only the newest
    # snapshot): wait for a second one rather than assume the step counter took two jumps to get there.
    page.wait_for_function("new Set(window.__steps).size >= 2")
    steps = page.evaluate("window.__steps")
    assert page.evaluate("window.__noReload") is True
    assert len(set(steps)) >= 2 and steps == sorted(steps), steps  # several pushes, never backwards
    assert page.locator("[data-chart=losses] canvas").count() >= 1  # echarts drew the chart


def _cancel(page: Any) -> int:
    page.click("[data-testid=run-cancel]")
    page.wait_for_selector(f'{PAGE}[data-status="cancelled"]', timeout=120_000)
    # The run's newest job, in "Jobs of this run", follows its snapshots too.
    page.wait_for_selector("[data-testid=run-jobs] tbody tr:first-child .status-cancelled")
    checkpoint = page.inner_text("[data-field=checkpoint]")
    assert checkpoint == f"step {_step(page)}", (
        checkpoint
    )  # the cancel wrote a checkpoint at the step reached
    return _step(page)


def test_admin_starts_watches_cancels_and_resumes_a_cpu_smoke_run(
    chromium_ready: None, web: Any, start_worker: Any, settings: Any, process_logs: Path
) -> None:
    _admin(settings)
    listing = ListingFactory()
    for seed in range(8):
        stored_photo(listing, 500 + seed, "kitchen")
    # One torch thread: the machine is shared, and oversubscribed threads stall small models.
    start_worker("train-worker", OMP_NUM_THREADS="1")
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1200, "height": 1000}) as page:
        log_in(page, base, "ada")
        page.click("header nav >> text=Training")
        page.wait_for_url(f"{base}/training/")
        page.select_option("#id_preset", "cpu-smoke")
        page.click("text=Start training")
        page.wait_for_url(f"{base}/training/runs/*/")
        page.wait_for_function("document.querySelector('[data-field=live]').textContent === '● live'")
        _watch_live_progress(page, 0)
        stopped_at = _cancel(page)
        assert page.is_visible("[data-testid=run-resume]") and not page.is_visible("[data-testid=run-cancel]")

        page.click("[data-testid=run-resume]")
        page.wait_for_selector(f'{PAGE}[data-status="running"]', timeout=120_000)
        assert _step(page) >= stopped_at  # resumed from the checkpoint, not from zero
        _watch_live_progress(page, stopped_at)
        assert min(page.evaluate("window.__steps")) >= stopped_at
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "training.png"), full_page=True)
        final = _cancel(page)

    run = TrainingRun.objects.get()
    jobs = list(Job.objects.filter(kind=Job.Kind.TRAIN).order_by("id"))
    assert [j.status for j in jobs] == [Job.Status.CANCELLED, Job.Status.CANCELLED]
    assert jobs[1].result["steps"] == final and run.checkpoint_step == run.step == final
    steps = list(TrainingMetric.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(1, final + 1))  # one row per step across the resume: none lost, none twice
