"""Embedding-space selectors for the baselines: k-center greedy (Coreset), k-means++ seeding (BADGE), TypiClust.

All work on the canonical case_id order of `selection.canonical_order` and keep a running minimum-distance array,
so one pick costs one (n, d) matrix-vector product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.selection import Ranked, canonical_order, check_budget, check_finite, pick_best, to_columns


def _sq_distances(x: np.ndarray, sq_norms: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of rows x (n, d) to one point (d,) -> (n,) float64, >= 0."""
    return np.maximum(sq_norms + float(point @ point) - 2.0 * (x @ point).astype(np.float64), 0.0)


def _min_sq_distances(x: np.ndarray, sq_norms: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    ref = np.asarray(reference, dtype=x.dtype)
    best = np.full(x.shape[0], np.inf)
    for start in range(0, ref.shape[0], chunk):
        block = ref[start:start + chunk]
        d = sq_norms[:, None] + (block.astype(np.float64) ** 2).sum(1)[None] - 2.0 * (x @ block.T)
        best = np.minimum(best, np.maximum(d, 0.0).min(axis=1))
    return best


def k_center_greedy(case_ids: Sequence[str], embeddings: np.ndarray, budget: int, rng: np.random.Generator, *,
                    reference: np.ndarray | None = None) -> Ranked:
    """Coreset: repeatedly pick the case farthest (Euclidean) from the labeled set and the picks so far.

    With no labeled set the first pick is the case farthest from the pool mean. Column `coreset_distance`: the
    distance to the nearest labeled/picked case when picked (after the last pick for the others).
    """
    n = len(case_ids)
    check_budget(budget, n)
    ids, order, tiebreak = canonical_order(case_ids, rng)
    x = np.ascontiguousarray(np.asarray(embeddings)[order], dtype=np.float32)
    check_finite("embedding", x.sum(axis=1), ids)
    sq_norms = (x.astype(np.float64) ** 2).sum(axis=1)
    has_reference = reference is not None and len(reference) > 0
    if has_reference:
        min_d = _min_sq_distances(x, sq_norms, reference)
    else:
        min_d = _sq_distances(x, sq_norms, x.mean(axis=0))  # only to choose the first pick
    remaining = np.ones(n, dtype=bool)
    at_pick = np.full(n, np.nan)
    picks: list[int] = []
    for _ in range(budget):
        pick = pick_best(min_d, remaining, tiebreak)
        at_pick[pick] = np.sqrt(min_d[pick])
        to_pick = _sq_distances(x, sq_norms, x[pick])
        min_d = to_pick if not picks and not has_reference else np.minimum(min_d, to_pick)
        picks.append(pick)
        remaining[pick] = False
    rest = np.flatnonzero(remaining)
    at_pick[rest] = np.sqrt(min_d[rest])
    rest = rest[np.lexsort((tiebreak[rest], -min_d[rest]))]
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, {"coreset_distance": at_pick}))


def kmeans_pp_select(case_ids: Sequence[str], embeddings: np.ndarray, budget: int, rng: np.random.Generator
                     ) -> Ranked:
    """BADGE: k-means++ seeding on gradient embeddings; the first centre is the largest embedding (BADGE's choice),
    then each pick is drawn with probability proportional to the squared distance to the nearest pick. When every
    remaining distance is 0 (duplicates), the largest remaining embedding is taken, so picks never repeat.
    Column `badge_norm`: the embedding's L2 norm (gradient magnitude)."""
    n = len(case_ids)
    check_budget(budget, n)
    ids, order, tiebreak = canonical_order(case_ids, rng)
    x = np.ascontiguousarray(np.asarray(embeddings)[order], dtype=np.float64)
    check_finite("gradient embedding", x.sum(axis=1), ids)
    sq_norms = (x ** 2).sum(axis=1)
    remaining = np.ones(n, dtype=bool)
    picks = [pick_best(sq_norms, remaining, tiebreak)]
    remaining[picks[0]] = False
    min_d = _sq_distances(x, sq_norms, x[picks[0]])
    while len(picks) < budget:
        weights = np.where(remaining, min_d, 0.0)
        total = weights.sum()
        if total > 0:
            pick = int(rng.choice(n, p=weights / total))
        else:
            pick = pick_best(sq_norms, remaining, tiebreak)
        picks.append(pick)
        remaining[pick] = False
        min_d = np.minimum(min_d, _sq_distances(x, sq_norms, x[pick]))
    rest = np.flatnonzero(remaining)
    rest = rest[np.lexsort((tiebreak[rest], -sq_norms[rest]))]
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, {"badge_norm": np.sqrt(sq_norms)}))


def compute_typicality(points: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """TypiClust's typicality: 1 / mean Euclidean distance to the k nearest other points. points (n, d) -> (n,)
    float64; 0 for a single point. Rows are processed in chunks, so memory is (chunk, n); time is O(n^2 d)."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 2:
        return np.zeros(n)
    k = min(k, n - 1)
    sq = (points ** 2).sum(1)
    out = np.empty(n)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d = np.sqrt(np.maximum(sq[start:stop, None] + sq[None] - 2.0 * points[start:stop] @ points.T, 0.0))
        d[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own neighbour
        knn = np.partition(d, k - 1, axis=1)[:, :k]
        out[start:stop] = 1.0 / (knn.mean(axis=1) + 1e-12)
    return out


def _kmeans_over(x: np.ndarray, ref: np.ndarray, budget: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """k-means with |L| + budget clusters over pool and labeled embeddings: (points, pool labels, labeled labels,
    number of clusters)."""
    from sklearn.cluster import KMeans

    points = np.concatenate([x, ref])
    n_clusters = min(len(ref) + budget, len(np.unique(points.round(12), axis=0)))
    kmeans = KMeans(n_clusters=n_clusters, n_init=3, random_state=int(rng.integers(2**31 - 1)))
    labels = kmeans.fit_predict(points)
    return points, labels[:len(x)], labels[len(x):], n_clusters


def _cover_clusters(pool_labels: np.ndarray, ref_labels: np.ndarray, n_clusters: int, values: np.ndarray,
                    budget: int, tiebreak: np.ndarray) -> tuple[list[int], np.ndarray]:
    """TypiClust's cover: from the cluster with the fewest labeled/picked members (largest first, then the smallest
    id) take its case of highest `values`; repeat. Returns the picks and the rest ranked by `values`."""
    n = len(pool_labels)
    sizes = np.bincount(np.concatenate([pool_labels, ref_labels]), minlength=n_clusters)
    covered = np.bincount(ref_labels, minlength=n_clusters).astype(float)
    remaining = np.ones(n, dtype=bool)
    picks = []
    for _ in range(budget):
        open_clusters = np.unique(pool_labels[remaining])
        best = open_clusters[np.lexsort((open_clusters, -sizes[open_clusters], covered[open_clusters]))[0]]
        pick = pick_best(np.where(pool_labels == best, values, -np.inf), remaining & (pool_labels == best), tiebreak)
        picks.append(pick)
        remaining[pick] = False
        covered[best] += 1
    rest = np.flatnonzero(remaining)
    return picks, rest[np.lexsort((tiebreak[rest], -values[rest]))]


def _clustered_inputs(case_ids: Sequence[str], embeddings: np.ndarray, budget: int, rng: np.random.Generator,
                      reference: np.ndarray | None):
    n = len(case_ids)
    check_budget(budget, n)
    ids, order, tiebreak = canonical_order(case_ids, rng)
    x = np.ascontiguousarray(np.asarray(embeddings)[order], dtype=np.float64)
    check_finite("embedding", x.sum(axis=1), ids)
    ref = np.zeros((0, x.shape[1])) if reference is None else np.asarray(reference, dtype=np.float64)
    return ids, order, tiebreak, x, ref


def typiclust_select(case_ids: Sequence[str], embeddings: np.ndarray, budget: int, rng: np.random.Generator, *,
                     reference: np.ndarray | None = None, k_neighbors: int = 20) -> Ranked:
    """TypiClust: k-means (|L| + budget clusters) on pool and labeled embeddings; from the clusters with the fewest
    labeled/picked members (largest first) take the most typical case. Columns `typicality`, `cluster`."""
    ids, _, tiebreak, x, ref = _clustered_inputs(case_ids, embeddings, budget, rng, reference)
    n = len(ids)
    points, pool_labels, ref_labels, n_clusters = _kmeans_over(x, ref, budget, rng)
    labels = np.concatenate([pool_labels, ref_labels])
    typicality = np.zeros(n)
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        typ = compute_typicality(points[members], k_neighbors)
        pool_members = members < n
        typicality[members[pool_members]] = typ[pool_members]
    picks, rest = _cover_clusters(pool_labels, ref_labels, n_clusters, typicality, budget, tiebreak)
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, {"typicality": typicality, "cluster": pool_labels}))


def cluster_cover_select(case_ids: Sequence[str], embeddings: np.ndarray, scores: np.ndarray, budget: int,
                         rng: np.random.Generator, *, reference: np.ndarray | None = None) -> Ranked:
    """TypiClust's cover with a score: the same k-means clusters and cluster order, but from each cluster the case
    of highest `scores` (n,) (aligned with `case_ids`) instead of the most typical. Columns `score`, `cluster`."""
    ids, order, tiebreak, x, ref = _clustered_inputs(case_ids, embeddings, budget, rng, reference)
    values = np.asarray(scores, dtype=np.float64)[order]
    check_finite("score", values, ids)
    _, pool_labels, ref_labels, n_clusters = _kmeans_over(x, ref, budget, rng)
    picks, rest = _cover_clusters(pool_labels, ref_labels, n_clusters, values, budget, tiebreak)
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, {"score": values, "cluster": pool_labels}))
