"""Power sampling (Kirsch et al., TMLR 2023): the noise on log scores and its beta (fixed or ClaSP PE's schedule).

Adding Gumbel(0, 1/beta) noise to log(score) and taking the top k samples k cases without replacement with
P(i) ∝ score_i^beta (the Gumbel-top-k trick): beta -> inf is greedy top-k, beta -> 0 uniform random. Noise is drawn
in the canonical case_id order from the seeded generator, so a selection never depends on pool order. The
selectors that use it (`selection.power_top_k`, the greedy batch, `stratified`) live beside the greedy ones.
"""

from __future__ import annotations

import numpy as np

from assft.query.config import QueryConfig


def compute_beta_schedule(round_index: int | None, total_rounds: int | None, start: float = 1.0,
                          end: float = 100.0) -> float:
    """ClaSP PE's exponential schedule beta_t = start * (end / start) ** ((t - 1) / (T - 1)) for rounds t = 1..T.

    Round 1 gets `start` and round T `end` (1 and 100: beta_t = 100 ** ((t - 1) / (T - 1))). Without round
    information (a one-off query), or with a single round (T = 1), the schedule's first value `start` is used: it
    is Kirsch et al.'s default beta = 1, and a single round is a first round. Rounds past T keep `end`.
    """
    if round_index is None or total_rounds is None or total_rounds <= 1:
        return float(start)
    t = min(max(int(round_index), 1), int(total_rounds))
    return float(start * (end / start) ** ((t - 1) / (total_rounds - 1)))


def resolve_power_beta(config: QueryConfig, round_index: int | None, total_rounds: int | None) -> float:
    """The beta of this round: `power.beta` when fixed, else the schedule at (round_index, total_rounds)."""
    if config.power.beta != "schedule":
        return float(config.power.beta)
    return compute_beta_schedule(round_index, total_rounds, config.power.beta_start, config.power.beta_end)


def compute_power_scores(scores: np.ndarray, beta: float, rng: np.random.Generator, eps: float = 1e-6
                         ) -> np.ndarray:
    """log(max(score, eps)) + Gumbel(0, 1/beta): scores (n,) -> noised (n,) float64; one draw per entry of `rng`."""
    values = np.asarray(scores, dtype=np.float64)
    # Gumbel(0, 1/beta) = -log(-log U) / beta; scores must be positive, so they are clipped at eps (a score of 0,
    # e.g. the pool minimum after min-max normalisation, keeps a small chance instead of -inf)
    return np.log(np.maximum(values, eps)) + rng.gumbel(0.0, 1.0, size=values.shape) / beta
