"""Label-free retrieval ideas of issue 16 over one collection's embeddings (pure numpy, all-pairs scores).

Every function returns a (Q, N) score matrix of query rows (indices into the collection) against the whole
collection; a higher score ranks first. The collection includes the queries themselves, as a search over
stored photos does: nothing here sees a room label.
- cosine: plain Lite0 cosine (the peer);
- today: centred Lite0 cosine shortlist of 30, re-ranked by the centred Lite0+Lite2 blend minus the
  candidate's hub score (search.ml.match.rerank, as the app's similar level);
- PCA-whitening learned on the collection (Jegou & Chum 2012, "Negative evidences and co-occurrences");
- alpha-query-expansion with database-side augmentation (Radenovic et al. 2018, "Fine-tuning CNN image
  retrieval with no human annotation");
- k-reciprocal re-ranking: Jaccard overlap of soft k-reciprocal neighbour sets (Zhong et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.ml.match.levels import LevelThresholds
from search.ml.match.rerank import CentringMeans, blend, centre_unit, hub_score

SHORTLIST = 30  # the app's verified shortlist (verify_top_k)


def unit(x: np.ndarray) -> np.ndarray:
    """(N, D) rows scaled to unit length."""
    return np.asarray(x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12), dtype=np.float32)


def cosine(x: np.ndarray, queries: Sequence[int]) -> np.ndarray:
    """(Q, N) plain cosines."""
    u = unit(x)
    return np.asarray(u[list(queries)] @ u.T, dtype=np.float32)


def today(lite0: np.ndarray, lite2: np.ndarray, queries: Sequence[int], t: LevelThresholds) -> np.ndarray:
    """(Q, N) today's order: centred Lite0 shortlist of 30 re-ranked by blend minus hub, the rest after."""
    means = CentringMeans.fit(lite0, lite2)
    c0, c2 = centre_unit(lite0, means.lite0), centre_unit(lite2, means.lite2)
    combined = blend(c0 @ c0.T, c2 @ c2.T, t)  # (N, N)
    np.fill_diagonal(combined, -np.inf)  # a photo is no neighbour of itself
    hub = np.array([hub_score(row[np.isfinite(row)], t) for row in combined], dtype=np.float32)  # (N,)
    q = list(queries)
    base = c0[q] @ c0.T  # (Q, N) the global search's order
    rescored = combined[q] - t.rerank_hub_weight * hub[None, :]
    out = base.copy()
    for i, qi in enumerate(q):
        row = base[i].copy()
        row[qi] = -np.inf  # the query itself is excluded from its shortlist, as in the app
        top = np.argsort(-row)[:SHORTLIST]
        out[i, top] = 10.0 + rescored[i, top]  # shortlisted photos first, in re-ranked order
    return np.asarray(out, dtype=np.float32)


def pca_whiten(x: np.ndarray, dims: int, power: float = 0.5, shrink: float = 0.1) -> np.ndarray:
    """(N, dims) unit rows: centred, rotated onto the top principal axes, each scaled by eigenvalue^-power."""
    centred = x.astype(np.float64) - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    eig = s**2 / max(len(x) - 1, 1)  # (min(N, D),)
    dims = min(dims, len(eig))
    # Shrinking toward the mean eigenvalue keeps the tiny trailing axes from being blown up into noise.
    scale = (eig[:dims] + shrink * eig[:dims].mean()) ** -power
    return unit((centred @ vt[:dims].T) * scale)


def joint(u0: np.ndarray, u2: np.ndarray, lite2_weight: float = 0.5) -> np.ndarray:
    """(N, D0+D2) rows whose dot products are the weighted blend of the two unit embeddings' cosines."""
    return np.hstack([np.sqrt(1.0 - lite2_weight) * u0, np.sqrt(lite2_weight) * u2]).astype(np.float32)


def alpha_qe(z: np.ndarray, queries: Sequence[int], n: int, alpha: float, dba: bool) -> np.ndarray:
    """(Q, N) scores after alpha-QE of the queries (and, if dba, of every stored row) over n neighbours."""
    sims = z @ z.T  # (N, N), z unit rows

    def expand(rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        top = np.argsort(-s, axis=1)[:, : n + 1]  # each row's own photo first (similarity 1)
        w = np.clip(np.take_along_axis(s, top, axis=1), 0.0, None) ** alpha  # (R, n+1)
        return unit(np.einsum("rn,rnd->rd", w, rows[top]))

    base = expand(z, sims) if dba else z
    q = list(queries)
    qexp = expand(base, base[q] @ base.T)
    return np.asarray(qexp @ base.T, dtype=np.float32)


def k_reciprocal(z: np.ndarray, queries: Sequence[int], k: int, lam: float) -> np.ndarray:
    """(Q, N) scores: (1 - lam) x cosine + lam x Jaccard similarity of soft k-reciprocal neighbour sets."""
    sims = z @ z.T  # (N, N)
    knn = np.argsort(-sims, axis=1)[:, : k + 1]  # (N, k+1), self included
    member = np.zeros(sims.shape, dtype=bool)
    np.put_along_axis(member, knn, True, axis=1)
    recip = member & member.T  # j in kNN(i) and i in kNN(j)
    v = np.where(recip, np.exp(sims), 0.0)
    v /= v.sum(axis=1, keepdims=True)  # (N, N) soft neighbour-set weights, rows sum to 1
    q = list(queries)
    out = np.empty((len(q), len(z)), dtype=np.float32)
    for i, qi in enumerate(q):
        nz = np.flatnonzero(v[qi])
        inter = np.minimum(v[qi, nz][None, :], v[:, nz]).sum(axis=1)  # (N,)
        union = 2.0 - inter  # sum(max) = sum(a) + sum(b) - sum(min), both sums are 1
        out[i] = (1.0 - lam) * sims[qi] + lam * inter / union
    return out
