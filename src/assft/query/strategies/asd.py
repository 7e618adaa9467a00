"""`asd`: Anatomical Segmentation Difficulty only (foreground entropy, class-balanced)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.selection import top_k
from assft.query.strategies.base import Selection, SelectionContext, Strategy, field_scores, register_strategy
from assft.query.summaries import CaseSummary


@register_strategy("asd")
class ASDStrategy(Strategy):
    """Highest ASD: mean entropy over the adaptive foreground, class-balanced (method.md)."""

    requires = frozenset({Need.PROBS})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "asd")
        ranked = top_k(scores, budget, rng)
        return self.finish(ranked, lambda c: f"hard foreground (ASD {scores[c]:.3f})")
