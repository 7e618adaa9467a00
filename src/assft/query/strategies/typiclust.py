"""`typiclust`: the most typical volume of each uncovered k-means cluster of the embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.clustering import typiclust_select
from assft.query.config import Need
from assft.query.strategies.base import Selection, SelectionContext, Strategy, register_strategy, stack_field
from assft.query.summaries import CaseSummary


@register_strategy("typiclust")
class TypiClustStrategy(Strategy):
    """TypiClust: k-means with |L| + budget clusters; the most typical case of the least covered, largest cluster."""

    requires = frozenset({Need.EMBEDDING})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        ranked = typiclust_select([s.case_id for s in pool], stack_field(pool, "embedding"), budget, rng,
                                  reference=context.labeled_embeddings, k_neighbors=self.config.typiclust_neighbors)
        typ, cluster = ranked.columns["typicality"], ranked.columns["cluster"]
        return self.finish(ranked, lambda c: f"most typical of an uncovered cluster (cluster {int(cluster[c])}, "
                                             f"typicality {typ[c]:.2f})")
