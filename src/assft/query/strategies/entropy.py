"""`entropy`: the volumes with the highest mean normalised voxel entropy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.selection import top_k
from assft.query.strategies.base import Selection, SelectionContext, Strategy, field_scores, register_strategy
from assft.query.summaries import CaseSummary


@register_strategy("entropy")
class EntropyStrategy(Strategy):
    """Highest mean voxel entropy over the whole volume (normalised by log C)."""

    requires = frozenset({Need.PROBS})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "entropy")
        ranked = top_k(scores, budget, rng)
        return self.finish(ranked, lambda c: f"uncertain prediction (mean entropy {scores[c]:.3f})")
