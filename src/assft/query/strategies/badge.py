"""`badge`: k-means++ seeding on last-layer gradient embeddings at the predicted label (no backward())."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.clustering import kmeans_pp_select
from assft.query.config import Need
from assft.query.strategies.base import Selection, SelectionContext, Strategy, register_strategy, stack_field
from assft.query.summaries import CaseSummary


@register_strategy("badge")
class BADGEStrategy(Strategy):
    """BADGE: k-means++ on (p - onehot(argmax p)) x penultimate features, pooled over voxels."""

    requires = frozenset({Need.GRAD_EMBEDDING})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        ranked = kmeans_pp_select([s.case_id for s in pool], stack_field(pool, "grad_embedding"), budget, rng)
        norm = ranked.columns["badge_norm"]
        return self.finish(ranked, lambda c: f"large and unlike other picks in gradient space (norm {norm[c]:.4f})")
