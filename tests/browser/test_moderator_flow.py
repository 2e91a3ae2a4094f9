"""A moderator names the largest cluster and moves a photo out; an admin re-clusters; both decisions hold."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from flatsite.core import accounts
from search.clusters import actions
from search.models import Cluster, ClusteringRun, Job, Listing, Membership
from tests.browser.conftest import chromium_page
from tests.processes import ROOT
from tests.search.clusters.fixtures import blob_photos, run_inline

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

PASSWORD = "correct-horse-battery-7"
BRUSH_ALL = """
(() => {
  const chart = window.clusterMap.chart;
  const axis = (name) => chart.getModel().getComponent(name, 0).axis;
  const [x, y] = [axis("xAxis"), axis("yAxis")];
  chart.dispatchAction({type: "brush", areas: [{brushType: "rect", xAxisIndex: 0,
    coordRange: [x.scale.getExtent(), y.scale.getExtent()]}]});
})();
"""
# A box in data coordinates (what dragging the box tool over those dots does).
BRUSH_BOX = """
(box) => window.clusterMap.chart.dispatchAction({type: "brush", areas: [{brushType: "rect", xAxisIndex: 0,
  coordRange: box}]})
"""
MAP_CLUSTERS = """
async () => {
  const data = await (await fetch(document.getElementById("cluster-map").dataset.url)).json();
  return Object.fromEntries(data.points.photo.map((id, k) => [id, data.points.cluster[k]]));
}
"""


def _users(settings: Any) -> None:
    # The web process verifies with Django's default hashers, not the fast MD5 one of the test settings.
    settings.PASSWORD_HASHERS = [f"{PBKDF2PasswordHasher.__module__}.{PBKDF2PasswordHasher.__name__}"]
    accounts.roles_setup()
    accounts.user_create(username="mona", password=PASSWORD, role="moderator")
    accounts.user_create(username="ada", password=PASSWORD, role="admin")


def _screenshot(page: Any, name: str) -> None:
    """Keep a picture of the page for people reviewing the run (test-artifacts/ is not committed)."""
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "test-artifacts" / name), full_page=True)


def _log_in(page: Any, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _name_largest_and_move_one_out(page: Any, base: str) -> dict[str, str]:
    """As the moderator: open the largest cluster, name it Kitchen, move its first photo elsewhere."""
    page.click("nav >> text=Clusters")
    page.wait_for_url(f"{base}/clusters/")
    first = page.locator("[data-testid=cluster-list] tbody tr").first
    largest_id = first.get_attribute("data-cluster")
    first.locator("a.cluster-link").click()
    page.wait_for_url(f"{base}/clusters/{largest_id}/")
    assert page.locator("[data-testid=gallery] img").count() == int(
        page.inner_text("[data-testid=member-count]")
    )
    page.fill("[data-testid=cluster-name]", "Kitchen")
    page.click("[data-testid=save-name]")
    page.wait_for_selector(".messages >> text=“Kitchen”")
    assert "Kitchen" in page.inner_text("[data-testid=gallery-title]")
    moved = page.locator("[data-testid=gallery] figure").first.get_attribute("data-photo")
    page.check(f'figure[data-photo="{moved}"] input[type=checkbox]')
    assert page.inner_text("[data-selected-count]") == "1 selected"
    target = page.locator("[data-testid=move-target] option").nth(1)
    target_id, target_text = target.get_attribute("value"), target.inner_text()
    page.select_option("[data-testid=move-target]", target_id)
    page.click("[data-testid=move]")
    page.wait_for_selector(".messages >> text=Moved 1 photo into")
    assert page.locator(f'[data-testid=gallery] figure[data-photo="{moved}"]').count() == 0
    _screenshot(page, "cluster-gallery.png")
    return {"cluster": largest_id, "photo": moved, "target": target_id, "target_text": target_text}


def _rerun_as_admin(page: Any, base: str) -> str:
    """As the admin: start a clustering run from the cluster page and watch its job to the end."""
    page.goto(f"{base}/clusters/")
    page.click("[data-testid=rerun]")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/jobs/\d+/"))
    job_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.wait_for_selector('.job-progress[data-status="succeeded"]', timeout=240_000)
    assert page.inner_text('.job-progress [data-field="percent"]') == "100%"
    return job_id


def _check_after_rerun(page: Any, base: str, before: dict[str, str]) -> None:
    """As the moderator again: the new run's largest cluster is still Kitchen and the photo stays moved."""
    page.goto(f"{base}/clusters/")
    summary = page.inner_text("[data-testid=run-summary] summary")
    assert "2 of 2 decided clusters kept their names" in summary, summary
    kitchen = page.locator("[data-testid=cluster-list] a.cluster-link", has_text="Kitchen")
    assert kitchen.count() == 1
    kitchen.click()
    page.wait_for_selector("[data-testid=gallery-title] >> text=Kitchen")
    assert page.url != f"{base}/clusters/{before['cluster']}/"  # a cluster of the new run
    assert page.locator(f'[data-testid=gallery] figure[data-photo="{before["photo"]}"]').count() == 0
    page.goto(f"{base}/clusters/photos/{before['photo']}/")
    placed = page.inner_text("[data-testid=photo-cluster]")
    assert "Kitchen" not in placed and "noise" not in placed, placed
    page.goto(f"{base}/clusters/map/")
    page.wait_for_selector("[data-testid=cluster-map][data-ready]")
    assert page.evaluate("window.clusterMap.points") == 52
    # A box over the whole map (what dragging the box tool does) selects every photo for the actions.
    page.evaluate(BRUSH_ALL)
    page.wait_for_selector("[data-map-selection] [data-selected-count] >> text=52 selected")
    assert len(page.input_value("[data-map-photos]").split(",")) == 52
    _screenshot(page, "cluster-map.png")


def test_name_and_move_survive_a_reclustering_started_by_an_admin(
    chromium_ready: None, web: Any, start_worker: Any, settings: Any, process_logs: Path
) -> None:
    _users(settings)
    owner = accounts.user_create(username="rita", password=PASSWORD, role="realtor")
    listing = Listing.objects.create(title="Photo collection", owner=owner)
    blob_photos(listing, (24, 16, 12), seed=61, thumbs=True)
    first_run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    assert first_run.cluster_count == 3
    start_worker("cluster-worker")
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1200, "height": 900}) as page:
        _log_in(page, base, "mona")
        before = _name_largest_and_move_one_out(page, base)
        _log_in(page, base, "ada")
        job_id = _rerun_as_admin(page, base)
        _log_in(page, base, "mona")
        _check_after_rerun(page, base, before)
        page.goto(f"{base}/clusters/")
        page.wait_for_load_state("networkidle")
        _screenshot(page, "clusters.png")

    job = Job.objects.get(pk=int(job_id))
    assert job.status == Job.Status.SUCCEEDED and job.worker != "inline"
    new_run = ClusteringRun.objects.get(is_current=True)
    assert new_run.pk == job.result["run"] != first_run.pk
    old_kitchen = Cluster.objects.get(pk=int(before["cluster"]))
    new_kitchen = Cluster.objects.get(run=new_run, name="Kitchen")
    assert new_kitchen.key == old_kitchen.key and new_kitchen.carried_from_id == old_kitchen.pk
    target_key = Cluster.objects.get(pk=int(before["target"])).key
    member = Membership.objects.select_related("cluster").get(run=new_run, photo_id=int(before["photo"]))
    assert member.cluster is not None and member.cluster.key == target_key
    assert member.source == Membership.Source.CONSTRAINT


def _clean_box(run: ClusteringRun) -> tuple[int, list[list[float]], dict[str, int]]:
    """A cluster whose padded bounding box holds no other dot on the map, the box, and every dot's cluster."""
    rows = list(Membership.objects.filter(run=run).values_list("photo_id", "cluster_id", "x", "y"))
    where = {str(p): c if c is not None else -1 for p, c, _x, _y in rows}
    for cluster_id in sorted({c for _p, c, _x, _y in rows if c is not None}):
        xs = [round(x, 4) for _p, c, x, _y in rows if c == cluster_id]
        ys = [round(y, 4) for _p, c, _x, y in rows if c == cluster_id]
        pad = 0.02 * max(max(xs) - min(xs), max(ys) - min(ys), 1e-3)
        box = [[min(xs) - pad, max(xs) + pad], [min(ys) - pad, max(ys) + pad]]
        inside = {c for _p, c, x, y in rows if box[0][0] <= x <= box[0][1] and box[1][0] <= y <= box[1][1]}
        if inside == {cluster_id}:
            return cluster_id, box, where
    raise AssertionError("no cluster of the test run has a bounding box free of other dots")


def test_box_selection_selects_only_the_dots_inside_the_box_and_split_leaves_other_clusters_alone(
    chromium_ready: None, web: Any, settings: Any, process_logs: Path
) -> None:
    _users(settings)
    owner = accounts.user_create(username="rita", password=PASSWORD, role="realtor")
    listing = Listing.objects.create(title="Photo collection", owner=owner)
    blob_photos(listing, (24, 16, 12), seed=61, thumbs=True)
    run = ClusteringRun.objects.get(pk=run_inline().result["run"])
    picked, box, before = _clean_box(run)
    others = [c.pk for c in Cluster.objects.filter(run=run).exclude(pk=picked)]
    actions.cluster_approve(others[0], user=None)  # an approved cluster must not be gutted
    members = {p for p, c in before.items() if c == picked}
    base = web.extra["url"]
    with chromium_page(viewport={"width": 1200, "height": 900}) as page:
        _log_in(page, base, "mona")
        page.goto(f"{base}/clusters/map/")
        page.wait_for_selector("[data-testid=cluster-map][data-ready]")
        page.evaluate(BRUSH_BOX, box)
        page.wait_for_function("window.clusterMap.selected().length > 0")
        assert {str(p) for p in page.evaluate("window.clusterMap.selected()")} == members
        assert page.inner_text("[data-map-selection] [data-selected-count]") == f"{len(members)} selected"
        thumbs = page.locator("[data-testid=map-thumbs] img")
        assert {thumbs.nth(i).get_attribute("data-photo") for i in range(thumbs.count())} == members
        _screenshot(page, "cluster-map-box.png")
        page.fill("[data-testid=map-split-name]", "Nook")
        page.click("[data-testid=map-split]")
        consequences = page.inner_text("[data-testid=consequences]")
        # One cluster, every one of its dots; the other clusters are not named.
        assert (
            f"{len(members)} photos leave Cluster #{picked} ({len(members)} of {len(members)},"
            in consequences
        )
        assert all(f"Cluster #{other} " not in consequences for other in others), consequences
        assert page.locator("[data-testid=confirm-thumbs] img").count() == len(members)
        page.click("[data-testid=confirm-button]")
        page.wait_for_selector(f".messages >> text=Split {len(members)} photos off into new cluster")
        page.wait_for_selector("[data-testid=cluster-map][data-ready]")
        after = page.evaluate(MAP_CLUSTERS)
        undo = page.inner_text("[data-testid=undo]")
        assert undo.startswith(f"Undo: Split {len(members)} photos"), undo
        page.click("[data-testid=undo]")
        page.wait_for_selector(".messages >> text=Undid: Split")
        undone = page.evaluate(MAP_CLUSTERS)

    moved = {p for p, c in after.items() if c != before[p]}
    assert moved == members and len({after[p] for p in moved}) == 1 and after[next(iter(moved))] != picked
    assert {p: c for p, c in after.items() if p not in members} == {
        p: c for p, c in before.items() if p not in members
    }
    assert undone == before
    assert not Cluster.objects.filter(run=run, name="Nook").exists()
    assert Cluster.objects.get(pk=others[0]).state == Cluster.State.APPROVED
