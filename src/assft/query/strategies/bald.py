"""`bald`: MC-dropout BALD (T stochastic passes per window, reduced per window in the scorer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.selection import top_k
from assft.query.strategies.base import Selection, SelectionContext, Strategy, field_scores, register_strategy
from assft.query.summaries import CaseSummary


@register_strategy("bald")
class BALDStrategy(Strategy):
    """Highest mean voxel BALD (mutual information between prediction and weights, MC dropout, T samples)."""

    requires = frozenset({Need.MC_PROBS})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "bald")
        ranked = top_k(scores, budget, rng)
        return self.finish(ranked, lambda c: f"MC-dropout samples disagree (BALD {scores[c]:.4f} nats, "
                                             f"T={self.config.mc_samples})")
