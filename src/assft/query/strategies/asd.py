"""`asd`: Anatomical Segmentation Difficulty only (foreground entropy, class-balanced)."""

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


@register_strategy("asd")
class ASDStrategy(Strategy):
    """Highest ASD: mean entropy over the adaptive foreground, class-balanced (method.md)."""

    requires = frozenset({Need.PROBS})
    score_based = True

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "asd")
        beta = self.power_beta(context)
        ranked = self.rank_scores(scores, budget, rng, beta)
        return self.finish(ranked, lambda c: f"hard foreground (ASD {scores[c]:.3f}){power_note(beta)}",
                           **sampling_notes(beta, context))
