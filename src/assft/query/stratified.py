"""Class-stratified (power) selection of ClaSP PE: a share of the budget round-robin over the foreground classes by
each class's uncertainty, the rest by plain predictive entropy; no case is picked twice; seeded, order-independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from assft.errors import ConfigError
from assft.query.power import compute_power_scores
from assft.query.selection import Ranked, canonical_order, check_budget, check_finite, pick_best, to_columns


def split_stratified_budget(budget: int, n_classes: int, class_fraction: float = 0.66, first_class: int = 0
                            ) -> list[int]:
    """The class (0-based foreground index) of each stratified pick, in pick order; the remaining
    budget - len(result) picks go to plain PE.

    round(class_fraction * budget) picks (half up: 0.66 * 3 = 1.98 -> 2, 0.66 * 5 = 3.3 -> 3, 0.66 * 1 -> 1) are
    dealt round-robin over the classes starting at `first_class`, so the counts per class differ by at most one.
    """
    if n_classes < 1:
        raise ConfigError("class stratification needs at least one foreground class.",
                          fix="use a model with a background and at least one foreground class")
    n_strat = min(budget, math.floor(class_fraction * budget + 0.5))
    return [(first_class + i) % n_classes for i in range(n_strat)]


def class_stratified_select(
    case_ids: Sequence[str],
    class_pe: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    beta: float | None,
    class_fraction: float = 0.66,
    first_class: int = 0,
    eps: float = 1e-6,
) -> Ranked:
    """ClaSP PE's batch: for each stratified pick (see `split_stratified_budget`), the best remaining case by its
    class's noised score, then the best remaining cases by noised plain PE.

    Args:
        case_ids: the candidates (any order).
        class_pe: (n, C) per case: [:, 0] the plain PE score, [:, c] class c's (c >= 1), all >= 0.
        budget: picks to make (<= n).
        rng: tie-break and noise generator.
        beta: power sampling: each score becomes log(max(s, eps)) + Gumbel(0, 1/beta), one draw per case and score
            for the round (sampling without replacement P ∝ s^beta within each part); None: plain scores.
        class_fraction, first_class: see `split_stratified_budget`.

    Returns:
        Ranked: picks, then the rest by plain PE. Columns PE and U_c (raw), PE_power and U_c_power (noised, with
        beta), clasp_part (the score that chose a pick: 0 = plain PE, c = class c; picks only).
    """
    n = len(case_ids)
    check_budget(budget, n)
    ids, order, tiebreak = canonical_order(case_ids, rng)
    scores = np.asarray(class_pe, dtype=np.float64)[order]
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ConfigError(f"class_pe must be (n, C) with C >= 2 (PE and a foreground class), got {scores.shape}.",
                          fix="score the pool with Need.CLASS_PE")
    check_finite("class PE", scores.sum(axis=1), ids)
    # one noise draw per case and score for the whole round: within each part this is Gumbel-top-k, i.e. sampling
    # without replacement P ∝ score^beta
    keys = scores if beta is None else compute_power_scores(scores, beta, rng, eps)
    remaining = np.ones(n, dtype=bool)
    part = np.full(n, np.nan)
    picks: list[int] = []
    classes = split_stratified_budget(budget, scores.shape[1] - 1, class_fraction, first_class)
    for c in [k + 1 for k in classes] + [0] * (budget - len(classes)):
        pick = pick_best(keys[:, c], remaining, tiebreak)
        picks.append(pick)
        part[pick] = c
        remaining[pick] = False
    rest = np.flatnonzero(remaining)
    rest = rest[np.lexsort((tiebreak[rest], -scores[rest, 0]))]
    columns = {"PE": scores[:, 0], "clasp_part": part}
    columns.update({f"U_{c}": scores[:, c] for c in range(1, scores.shape[1])})
    if beta is not None:
        columns["PE_power"] = keys[:, 0]
        columns.update({f"U_{c}_power": keys[:, c] for c in range(1, scores.shape[1])})
    return Ranked([ids[i] for i in picks], [ids[i] for i in picks] + [ids[i] for i in rest.tolist()],
                  to_columns(ids, columns))
