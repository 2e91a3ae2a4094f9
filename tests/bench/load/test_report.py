"""The load test report: busy answers and end-to-end search times are shown, never hidden."""

from __future__ import annotations

from bench.load.report import SEARCH_BUSY, e2e_summary, endpoint_stats, stages_summary, verdicts, web_memory


def test_end_to_end_summary_counts_searches_that_were_answered_busy_first() -> None:
    rows = [[200.0, 0], [300.0, 0], [2500.0, 1], [400.0, 0]]
    summary = e2e_summary(rows)
    assert summary == {"searches": 4, "p50_ms": 300.0, "p95_ms": 2500.0, "retried_share": 0.25}
    assert e2e_summary([]) == {}


def test_stage_summary_gives_percentiles_per_stage() -> None:
    rows = [{"global_ms": float(ms), "verify_ms": ms / 10} for ms in (100, 200, 300)]
    rows.append({"global_ms": 400.0})  # an answer without one stage still counts for the others
    assert stages_summary(rows) == {
        "global_ms": {"p50_ms": 200.0, "p95_ms": 400.0},
        "verify_ms": {"p50_ms": 20.0, "p95_ms": 30.0},
    }


def test_search_verdict_names_the_busy_share_and_the_end_to_end_time() -> None:
    records = [["search", 100.0, True, 200, 0.0, ""]] * 19 + [[SEARCH_BUSY, 5, True, 503, 0, ""]]
    result = {
        "error_rate": 0.0,
        "endpoints": endpoint_stats(records),
        "search_end_to_end": {"searches": 19, "p50_ms": 100.0, "p95_ms": 2100.0, "retried_share": 0.0526},
        "web_rss": {"slope_2nd_half_mb_per_min": 0.0, "start_mb": 1.0, "max_mb": 1.0, "end_mb": 1.0},
        "photos": {"lost": 0},
    }
    verdict = verdicts(result)["search p95 < 300 ms"]
    assert verdict.startswith("met (100 ms)")
    assert "5.3 % of searches were answered busy first (end-to-end p95 2100 ms" in verdict


def _rss_samples(web_per_min: float, index_per_min: float) -> list[dict[str, float]]:
    return [
        {"t": t, "web": 1000.0 + web_per_min * t / 60, "index_mb": 2.0 + index_per_min * t / 60}
        for t in range(0, 601, 5)
    ]


def test_web_memory_growth_that_the_growing_indexes_explain_is_not_a_leak() -> None:
    memory = web_memory(_rss_samples(web_per_min=1.5, index_per_min=0.8))
    assert memory["slope_2nd_half_mb_per_min"] == 1.5
    assert memory["index_slope_2nd_half_mb_per_min"] == 0.8
    assert memory["net_slope_2nd_half_mb_per_min"] == 0.7
    verdict = verdicts({"error_rate": 0.0, "endpoints": {}, "web_rss": memory, "photos": {"lost": 0}})
    assert verdict["web memory flat"].startswith(
        "no growth in the 2nd half beyond the indexes' growth (+0.70"
    )


def test_web_memory_growing_beyond_the_indexes_is_reported_as_growing() -> None:
    memory = web_memory(_rss_samples(web_per_min=3.0, index_per_min=0.8))
    verdict = verdicts({"error_rate": 0.0, "endpoints": {}, "web_rss": memory, "photos": {"lost": 0}})
    assert verdict["web memory flat"].startswith("GROWING in the 2nd half beyond the indexes' growth (+2.20")


def test_web_memory_without_index_sizes_judges_the_raw_slope() -> None:
    samples = [{"t": float(t), "web": 1000.0 + 2.0 * t / 60} for t in range(0, 601, 5)]
    memory = web_memory(samples)
    assert memory["index_slope_2nd_half_mb_per_min"] == 0.0
    assert memory["net_slope_2nd_half_mb_per_min"] == 2.0
