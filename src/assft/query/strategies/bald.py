"""`bald`: MC-dropout BALD (T stochastic passes per window, reduced per window in the scorer)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.strategies.base import (
    Selection,
    SelectionContext,
    Strategy,
    field_scores,
    power_note,
    register_strategy,
    sampling_notes,
)
from assft.query.summaries import CaseSummary


@register_strategy("bald")
class BALDStrategy(Strategy):
    """Highest mean voxel BALD (mutual information between prediction and weights, MC dropout, T samples)."""

    requires = frozenset({Need.MC_PROBS})
    score_based = True

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "bald")
        beta = self.power_beta(context)
        ranked = self.rank_scores(scores, budget, rng, beta)
        return self.finish(ranked, lambda c: f"MC-dropout samples disagree (BALD {scores[c]:.4f} nats, "
                                             f"T={self.config.mc_samples}){power_note(beta)}",
                           **sampling_notes(beta, context))
