"""`coreset`: k-center greedy on the pooled embeddings z (labeled set as initial centres)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.clustering import k_center_greedy
from assft.query.config import Need
from assft.query.strategies.base import Selection, SelectionContext, Strategy, register_strategy, stack_field
from assft.query.summaries import CaseSummary


@register_strategy("coreset")
class CoresetStrategy(Strategy):
    """k-center greedy on embeddings: each pick is farthest from the labeled set and earlier picks."""

    requires = frozenset({Need.EMBEDDING})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        ranked = k_center_greedy([s.case_id for s in pool], stack_field(pool, "embedding"), budget, rng,
                                 reference=context.labeled_embeddings)
        dist = ranked.columns["coreset_distance"]
        return self.finish(ranked, lambda c: f"covers the embedding space (distance {dist[c]:.3f} to the nearest "
                                             "labeled or chosen volume)")
