"""Selection: top-k, power top-k and the greedy DKD/Q batch (Div recomputed after every pick), seeded.

Every selector first sorts the cases by case_id, draws one random permutation of them from the given generator as
the tie-break key, and works on that canonical order, so the result does not depend on pool order and ties are
broken by the seed only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from assft.errors import BudgetError, ConfigError
from assft.metrics.scores import compute_cosine_distances, unit_rows
from assft.query.power import compute_power_scores


@dataclass
class Ranked:
    """A selector's output: picks in order, every case ranked (picks first), per-case columns."""

    selected: list[str]
    ranking: list[str]
    columns: dict[str, dict[str, float]] = field(default_factory=dict)


def to_columns(ids: Sequence[str], arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-case arrays (n,) in `ids` order -> {name: {case_id: value}}, NaN entries left out (vectorised)."""
    id_array = np.asarray(ids, dtype=object)
    out = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr, dtype=np.float64)
        keep = np.isfinite(arr)
        if keep.any():
            out[name] = dict(zip(id_array[keep].tolist(), arr[keep].tolist(), strict=True))
    return out


def canonical_order(case_ids: Sequence[str], rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted ids, permutation putting the input in sorted order, tie-break key per sorted id from `rng`)."""
    ids = [str(c) for c in case_ids]
    if len(set(ids)) != len(ids):
        dup = sorted({c for c in ids if ids.count(c) > 1})[:3]
        raise ConfigError(f"duplicate case ids in the pool: {dup}.", fix="list each case once")
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable") if ids else np.zeros(0, dtype=int)
    return [ids[i] for i in order], order, rng.permutation(len(ids))


def check_budget(budget: int, n: int) -> None:
    """A budget must be in [1, n] (the candidate pool size)."""
    if budget > n:
        raise BudgetError(f"budget {budget} is larger than the candidate pool of {n} volumes.",
                          fix=f"ask for at most {n} volumes")
    if budget < 1:
        raise BudgetError(f"budget must be at least 1, got {budget}.", fix="ask for 1 or more volumes")


def check_finite(name: str, values: np.ndarray, case_ids: Sequence[str]) -> None:
    """NaN/Inf scores are an error naming the case (never silently replaced)."""
    bad = ~np.isfinite(values)
    if bad.any():
        example = case_ids[int(np.argmax(bad))]
        raise ConfigError(f"score {name} is not finite for {int(bad.sum())} cases (e.g. {example}).",
                          fix="check the input volumes (NaN/Inf) and the model (`assft data check`)")


def value_range(values: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float] | None:
    """(min, max) of `values` over `mask` (default: all); None when empty or constant (nothing to normalise by)."""
    ref = np.asarray(values, dtype=np.float64)
    ref = ref if mask is None else ref[mask]
    if ref.size == 0:
        return None
    lo, hi = float(ref.min()), float(ref.max())
    return None if hi - lo <= 1e-12 * max(1.0, abs(hi)) else (lo, hi)


def rescale(values: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """(v - lo) / (hi - lo) for bounds (lo, hi); None bounds map every value to 1 (see `min_max_normalise`)."""
    values = np.asarray(values, dtype=np.float64)
    if bounds is None:
        return np.ones_like(values)
    return (values - bounds[0]) / (bounds[1] - bounds[0])


def min_max_normalise(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(v - min) / (max - min) with min/max over `mask` (default: all); a constant set maps to 1 (no information,
    so a product or sum with it keeps the other factor's order)."""
    return rescale(values, value_range(values, mask))


def pick_best(values: np.ndarray, remaining: np.ndarray, tiebreak: np.ndarray) -> int:
    """Index of the largest value among `remaining`; ties go to the smallest tie-break key."""
    masked = np.where(remaining, values, -np.inf)
    candidates = np.flatnonzero(masked == masked.max())
    return int(candidates[np.argmin(tiebreak[candidates])]) if candidates.size > 1 else int(candidates[0])


def rank_by_score(scores: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    """Every case id, highest score first; ties in random (seeded) order."""
    ids, _, tiebreak = canonical_order(list(scores), rng)
    values = np.asarray([scores[c] for c in ids], dtype=np.float64)
    check_finite("", values, ids)
    return [ids[i] for i in np.lexsort((tiebreak, -values))]


def top_k(scores: Mapping[str, float], budget: int, rng: np.random.Generator) -> Ranked:
    """The `budget` highest-scoring cases (ties by a seeded draw) and the full ranking."""
    check_budget(budget, len(scores))
    ranking = rank_by_score(scores, rng)
    return Ranked(ranking[:budget], ranking)


def power_top_k(scores: Mapping[str, float], budget: int, rng: np.random.Generator, beta: float,
                eps: float = 1e-6) -> Ranked:
    """`budget` cases sampled without replacement with P ∝ score^beta (Gumbel-top-k on log scores); the ranking
    orders every case by its noised log score. Columns `power_score` (noised log score) and `power_beta`."""
    check_budget(budget, len(scores))
    ids, _, tiebreak = canonical_order(list(scores), rng)
    values = np.asarray([scores[c] for c in ids], dtype=np.float64)
    check_finite("", values, ids)
    noised = compute_power_scores(values, beta, rng, eps)
    ranking = [ids[i] for i in np.lexsort((tiebreak, -noised))]
    return Ranked(ranking[:budget], ranking,
                  to_columns(ids, {"power_score": noised, "power_beta": np.full(len(ids), beta)}))


def normalised_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 C-contiguous (n, d): the greedy loop's working precision."""
    return unit_rows(embeddings, np.float32)


def pool_scale_q(kd: np.ndarray, asd: np.ndarray | None, div: np.ndarray, steps: Sequence[tuple[np.ndarray,
                 np.ndarray]], alpha: float, combine: str) -> dict[str, np.ndarray]:
    """Q_pool, KD_pool and ASD_pool of `greedy_diverse_top_k` (see there): kd, asd, div (n,) with div each case's
    Div when it was picked (or after the last pick); steps: (indices, Div) of the cases left at every step, whose
    values set the ranges of Div and DKD."""
    kd_pool = min_max_normalise(kd)
    all_div = np.concatenate([d for _, d in steps])
    div_bounds = value_range(all_div)

    def dkd_of(index: np.ndarray, d: np.ndarray) -> np.ndarray:
        return kd_pool[index] * d if combine == "product" else (kd_pool[index] + rescale(d, div_bounds)) / 2.0

    dkd_bounds = value_range(np.concatenate([dkd_of(i, d) for i, d in steps]))
    dkd = rescale(dkd_of(np.arange(len(kd)), div), dkd_bounds)
    if asd is None:
        return {"Q_pool": dkd, "KD_pool": kd_pool}
    asd_pool = min_max_normalise(asd)
    return {"Q_pool": alpha * dkd + (1.0 - alpha) * asd_pool, "KD_pool": kd_pool, "ASD_pool": asd_pool}


def greedy_diverse_top_k(
    case_ids: Sequence[str],
    kd: np.ndarray,
    embeddings: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    asd: np.ndarray | None = None,
    alpha: float = 0.5,
    combine: str = "product",
    reference: np.ndarray | None = None,
    power_beta: float | None = None,
    power_eps: float = 1e-6,
    kd_label: str = "KD",
) -> Ranked:
    """Greedy batch of method.md: pick argmax Q, add it to B, recompute Div (hence DKD and Q) for the rest, repeat.

    Args:
        case_ids, kd (n,), embeddings (n, d), asd (n,) or None: the candidates (in any order).
        budget: picks to make (<= n).
        rng: tie-break generator.
        alpha: Q = alpha * norm(DKD) + (1 - alpha) * norm(ASD); with asd None (cold start) Q = DKD.
        combine: "product" DKD = norm(KD) * Div; "sum" DKD = (norm(KD) + norm(Div)) / 2.
        reference: embeddings (m, d) of the labeled set L; none -> Div of the first pick is the distance to the
            pool's mean embedding.
        power_beta: None: each step picks argmax Q. A number: power sampling at each step, argmax of
            log(max(Q, power_eps)) + Gumbel(0, 1/beta) with fresh noise per step, so every pick is a draw
            P ∝ Q^beta from the current (Div-updated) scores.
        kd_label: the name of the `kd` column prefix ("Typ" when typicality stands in for KD).

    Returns:
        Ranked with columns Q, DKD, Div, KD_norm (or `kd_label`_norm), Div_norm, ASD_norm: the values when a case
        was picked, and after the last pick for the others; norm is min-max over the cases not yet picked (the
        current pool). With power sampling also Q_power, the noised log Q at pick time.

        Q_pool, KD_pool (`kd_label`_pool) and ASD_pool: the same Q, KD and ASD on one scale for every rank, for
        people. Q itself follows the spec (min-max over the cases not yet picked), so each pick's Q is the largest
        of its step: exactly 1 whenever DKD alone decides (alpha 1). Q_pool takes each case's DKD at its pick (Div
        then) and min-max normalises every term over all candidates and every step of this selection (KD and ASD:
        the whole candidate pool), so it lies in [0, 1] and compares across ranks. It can still rise with rank:
        the first pick's Div is a distance to the pool's mean embedding (nothing is labeled or picked yet), later
        ones a distance to the nearest pick, and each step's renormalisation shifts the balance of DKD and ASD.
    """
    n = len(case_ids)
    check_budget(budget, n)
    if combine not in ("product", "sum"):
        raise ConfigError(f"unknown kd.combine {combine!r}.", fix="use 'product' or 'sum'")
    ids, order, tiebreak = canonical_order(case_ids, rng)
    kd_s = np.asarray(kd, dtype=np.float64)[order]
    check_finite("KD", kd_s, ids)
    asd_s = None if asd is None else np.asarray(asd, dtype=np.float64)[order]
    if asd_s is not None:
        check_finite("ASD", asd_s, ids)
    z = normalised_embeddings(np.asarray(embeddings)[order])
    has_reference = reference is not None and len(reference) > 0
    if has_reference:
        min_div = compute_cosine_distances(z, np.asarray(reference), dtype=np.float32, unit=True)
    else:  # empty L and B: distance to the pool's mean embedding (first pick only)
        mean = normalised_embeddings(z.mean(axis=0, keepdims=True))[0]
        min_div = np.clip(1.0 - (z @ mean).astype(np.float64), 0.0, 2.0)
    remaining = np.ones(n, dtype=bool)
    names = ("Q", "DKD", "Div", "KD_norm", "Div_norm", "ASD_norm") + (("Q_power",) if power_beta is not None else ())
    values = {name: np.full(n, np.nan) for name in names}

    def scores() -> dict[str, np.ndarray]:
        kd_n = min_max_normalise(kd_s, remaining)
        div_n = min_max_normalise(min_div, remaining)
        dkd = kd_n * min_div if combine == "product" else (kd_n + div_n) / 2.0
        out = {"DKD": dkd, "Div": min_div, "KD_norm": kd_n, "Div_norm": div_n}
        if asd_s is None:
            out["Q"] = dkd
        else:
            out["ASD_norm"] = min_max_normalise(asd_s, remaining)
            out["Q"] = alpha * min_max_normalise(dkd, remaining) + (1.0 - alpha) * out["ASD_norm"]
        return out

    steps: list[tuple[np.ndarray, np.ndarray]] = []  # (indices left, their Div) at every step: Q_pool's ranges
    picks: list[int] = []
    for _ in range(budget):
        current = scores()
        steps.append((np.flatnonzero(remaining), min_div[remaining]))
        if power_beta is not None:
            current["Q_power"] = compute_power_scores(current["Q"], power_beta, rng, power_eps)
        pick = pick_best(current["Q_power" if power_beta is not None else "Q"], remaining, tiebreak)
        for name, arr in current.items():
            values[name][pick] = arr[pick]
        to_pick = np.clip(1.0 - (z @ z[pick]).astype(np.float64), 0.0, 2.0)
        min_div = to_pick if not picks and not has_reference else np.minimum(min_div, to_pick)
        picks.append(pick)
        remaining[pick] = False
    rest = np.flatnonzero(remaining)
    if rest.size:
        current = scores()
        steps.append((rest, min_div[rest]))
        for name, arr in current.items():
            values[name][rest] = arr[rest]
        rest = rest[np.lexsort((tiebreak[rest], -current["Q"][rest]))]
    values.update(pool_scale_q(kd_s, asd_s, values["Div"], steps, alpha, combine))
    if kd_label != "KD":
        values[f"{kd_label}_norm"] = values.pop("KD_norm")
        values[f"{kd_label}_pool"] = values.pop("KD_pool")
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, values))
