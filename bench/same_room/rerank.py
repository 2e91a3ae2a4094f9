"""Similar-level re-ranking for bench.same_room: Lite2 embeddings, centring means, hub scores, timings."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from bench.common.match_levels import CACHE, CandidateRow, Collection, Progress
from search.ml.match.levels import LevelThresholds
from search.ml.match.rerank import CentringMeans, combined_similarity, hub_score, rerank_scores

LITE2 = "effnet-lite2"


def lite2_embeddings(
    name: str, items: Sequence[tuple[str, Callable[[], Image.Image]]]
) -> tuple[np.ndarray, float]:
    """(N, D) Lite2 embeddings (cached per name) and the mean CPU seconds of one single-photo embedding."""
    import torch

    from search.ml.encoders.registry import load_encoder

    path = CACHE / f"sr_lite2_{name}.npz"
    keys = np.array([k for k, _ in items])
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if np.array_equal(z["keys"], keys):
                return z["emb"], float(z["cpu_s"])
    torch.set_num_threads(1)
    encoder = load_encoder(LITE2, device="cpu")
    out, cpu = [], []
    progress = Progress(f"{name} Lite2")
    for n, (_, loader) in enumerate(items, 1):
        img = loader()
        start = time.process_time()
        out.append(encoder.embed_images([img], batch_size=1)[0])  # one photo, as a search query is
        cpu.append(time.process_time() - start)
        progress(n, len(items))
    emb = np.stack(out).astype(np.float32)  # (N, D)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, keys=keys, emb=emb, cpu_s=np.float64(np.median(cpu)))
    return emb, float(np.median(cpu))


class Reranker:
    """Hub scores of every collection photo and re-ranking scores of verified shortlists."""

    def __init__(self, collection: Collection, lite2: np.ndarray, n_listing: int, t: LevelThresholds) -> None:
        lite0 = np.stack([r.embedding for r in collection.records])  # (N, D0)
        # The index version's means; here the listing photos' (as the bench's Lite0 centring).
        self.means = CentringMeans.fit(lite0[:n_listing], lite2[:n_listing])
        self.lite0, self.lite2, self.t = lite0, lite2, t
        self.queries: dict[str, int] = {}
        self.shortlists: dict[str, list[int]] = {}
        # Each photo's hub score from its own global top-k, as the app would compute it when storing it.
        self.hub = np.array(
            [self._own_hub(collection, i) for i in range(len(lite0))], dtype=np.float32
        )  # (N,)

    def _own_hub(self, collection: Collection, i: int) -> float:
        ids = [j for j, _ in collection.shortlist(collection.records[i], self.t.verify_top_k, exclude=[i])]
        sims = combined_similarity(
            self.lite0[i], self.lite2[i], self.lite0[ids], self.lite2[ids], self.means, self.t
        )
        return hub_score(sims, self.t)

    def scores(self, query: int, cands: list[int], t: LevelThresholds | None = None) -> dict[int, float]:
        """{candidate: re-ranking score} for one query photo's verified candidates."""
        t = t or self.t
        sims = combined_similarity(
            self.lite0[query], self.lite2[query], self.lite0[cands], self.lite2[cands], self.means, t
        )
        return dict(zip(cands, rerank_scores(sims, self.hub[cands], t).tolist(), strict=True))

    def per_query(self, t: LevelThresholds | None = None) -> dict[str, dict[int, float]]:
        """Re-ranking scores of each query's first verify_top_k candidates (queries set by set_queries)."""
        t = t or self.t
        return {
            key: self.scores(self.queries[key], cands[: t.verify_top_k], t)
            for key, cands in self.shortlists.items()
        }

    def set_queries(self, rows: list[CandidateRow], keys: dict[str, int]) -> None:
        """The benchmark's queries {key: collection index} and their verified candidate rows."""
        self.queries = keys
        self.shortlists = {
            key: [r.cand for r in sorted(rows, key=lambda r: r.rank) if r.query == key] for key in keys
        }

    def cpu_ms(self, query: int, cands: list[int], repeats: int = 200) -> float:
        """CPU milliseconds to re-score one query's candidates (embeddings and hub scores in memory)."""
        start = time.process_time()
        for _ in range(repeats):
            self.scores(query, cands)
        return (time.process_time() - start) / repeats * 1000


def sensitivity(
    collection: Collection,
    lite2: np.ndarray,
    n_listing: int,
    t: LevelThresholds,
    rows: list[CandidateRow],
    keys: dict[str, int],
    evaluate: Callable[[dict[str, dict[int, float]], LevelThresholds], float],
) -> dict[str, float]:
    """recall@5 for other weights and k (hub scores recomputed): how fragile the a-priori choice is."""
    out: dict[str, float] = {}
    for w in (0.0, 0.3, 0.5, 0.7, 1.0):
        for k in (5, 10, 20):
            tk = replace(t, rerank_lite2_weight=w, rerank_hub_k=k)
            reranker = Reranker(collection, lite2, n_listing, tk)
            reranker.set_queries(rows, keys)
            for beta in (0.0, 0.5, 1.0):
                if beta == 0.0 and k != 10:
                    continue  # no hub penalty: k is unused
                tt = replace(reranker.t, rerank_hub_weight=beta)
                out[f"lite2_weight={w},hub_k={k},hub_weight={beta}"] = evaluate(reranker.per_query(tt), tt)
    return out
