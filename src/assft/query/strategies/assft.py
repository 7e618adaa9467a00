"""`assft`: the full query score Q = alpha * norm(DKD) + (1 - alpha) * norm(ASD), greedy batch; cold start Q = DKD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.errors import ConfigError
from assft.query.config import Need
from assft.query.strategies.base import Selection, SelectionContext, Strategy, register_strategy
from assft.query.strategies.dkd import explain_greedy, greedy_select
from assft.query.summaries import CaseSummary


@register_strategy("assft")
class ASSFTStrategy(Strategy):
    """Full Q (DKD + ASD) with greedy diversity; Q = DKD at cold start (SSL-only model without a head)."""

    requires = frozenset({Need.NORM_STATS, Need.EMBEDDING, Need.PROBS})

    def cold_start(self, has_head: bool) -> bool:
        """Whether Q = DKD: cold_start 'always', or 'auto' with an SSL-only model."""
        mode = self.config.cold_start
        if mode == "never" and not has_head:
            raise ConfigError("cold_start is 'never' but the model is SSL-only (no head, so no ASD).",
                              fix="use cold_start 'auto' (Q = DKD until a head exists) or a supervised checkpoint")
        return mode == "always" or (mode == "auto" and not has_head)

    def resolve_needs(self, has_head: bool) -> frozenset[Need]:
        """Drop PROBS at cold start (nothing probability-based is computed then)."""
        if self.cold_start(has_head):
            return self.requires - {Need.PROBS}
        return self.requires

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        cold = self.cold_start(context.has_head)
        ranked = greedy_select(pool, context, budget, rng, use_asd=not cold)
        return self.finish(ranked, lambda c: explain_greedy(ranked, c, context), cold_start=cold)
