"""Similar-look re-ranking against the live indexes (search.ml.match.rerank on the app's centred indexes).

The search encoder's index and the re-rank encoder's index both store centred, unit vectors, so a
candidate's centred embeddings are read straight from them, and its hub score (CSLS) is its mean blended
similarity to its own nearest stored photos, computed here from the same indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from search.matching.live_index import index_for_search
from search.ml.index import SearchableIndex
from search.ml.match.levels import Level, LevelThresholds, Match
from search.ml.match.rerank import blend, hub_score, rerank_scores, rerank_similar
from search.ops.selectors import search_encoder


@dataclass(frozen=True)
class RerankIndexes:
    """The two live, centred indexes the re-ranking reads."""

    search: SearchableIndex  # search encoder (Lite0 by default)
    extra: SearchableIndex  # FLATSITE_RERANK_ENCODER (Lite2 by default)
    extra_encoder: str


def rerank_encoder(search: str | None = None) -> str:
    """The encoder blended into the re-ranking, or "" when re-ranking is off.

    search: the search encoder when the caller has already looked it up (one database read per search).
    """
    name = str(settings.FLATSITE_RERANK_ENCODER)
    return "" if name == (search if search is not None else search_encoder()) else name


def rerank_indexes(search: SearchableIndex | None, encoder: str | None = None) -> RerankIndexes | None:
    """The live search index and the re-rank encoder's, when re-ranking is on and both are centred.

    search: the search encoder's live index, which the caller has already looked up (encoder: its name).
    """
    name = rerank_encoder(encoder)
    if not name:
        return None
    extra = index_for_search(name)
    if search is None or extra is None or search.config.centre is None or extra.config.centre is None:
        return None
    return RerankIndexes(search, extra, name)


def _both(indexes: RerankIndexes, ids: Sequence[int]) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64)
    both: np.ndarray = arr[indexes.search.contains(arr) & indexes.extra.contains(arr)]
    return both


HUB_RESCORE = 128  # shortlist rows re-scored per neighbourhood look-up (the query's own: IndexConfig.rescore)


def hub_scores(indexes: RerankIndexes, ids: Sequence[int], t: LevelThresholds) -> dict[int, float]:
    """{id: hub score}: mean of its rerank_hub_k highest blended similarities to its nearest photos."""
    cands = _both(indexes, ids)
    if cands.size == 0:
        return {}
    own0 = indexes.search.vectors(cands)  # (K, D0) centred
    own2 = indexes.extra.vectors(cands)  # (K, D2) centred
    # A hub score averages a neighbourhood: an approximate one will do, so each of the K look-ups
    # re-scores fewer shortlist rows than a query's own search (bench/README.md, "App at scale").
    _, neighbours = indexes.search.search(
        own0, t.verify_top_k + 1, prepared=True, rescore=HUB_RESCORE
    )  # (K, k+1)
    hubs: dict[int, float] = {}
    for row, cand in enumerate(cands.tolist()):
        near = _both(indexes, [n for n in neighbours[row].tolist() if n >= 0 and n != cand])
        near = near[: t.verify_top_k]
        if near.size == 0:
            hubs[cand] = 0.0
            continue
        s0 = indexes.search.vectors(near) @ own0[row]  # (k,)
        s2 = indexes.extra.vectors(near) @ own2[row]  # (k,)
        hubs[cand] = hub_score(blend(s0, s2, t), t)
    return hubs


def similar_rerank(
    matches: list[Match],
    top_ids: Sequence[int],
    query: tuple[np.ndarray, np.ndarray],
    indexes: RerankIndexes,
    t: LevelThresholds,
) -> list[Match]:
    """Re-order the similar level: the candidates among top_ids by blended centred cosine minus hubness.

    query: the query's raw (D0,) search-encoder and (D2,) re-rank-encoder embeddings.
    """
    top = set(top_ids)
    cands = _both(indexes, [m.id for m in matches if m.level == Level.SIMILAR and m.id in top])
    if cands.size == 0:
        return matches
    q0 = indexes.search.prepare(query[0][None, :])[0]  # (D0,) centred
    q2 = indexes.extra.prepare(query[1][None, :])[0]  # (D2,) centred
    combined = blend(indexes.search.vectors(cands) @ q0, indexes.extra.vectors(cands) @ q2, t)  # (K,)
    hubs = hub_scores(indexes, cands.tolist(), t)
    scores = rerank_scores(combined, [hubs[c] for c in cands.tolist()], t)
    return rerank_similar(matches, dict(zip(cands.tolist(), scores.tolist(), strict=True)))
