"""`assft`: the full query score Q = alpha * norm(DKD) + (1 - alpha) * norm(ASD), greedy batch; cold start Q = DKD
(or, with `cold_start_method`, TypiClust's typicality or k-center on the embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.errors import ConfigError
from assft.query.clustering import k_center_greedy, typiclust_select
from assft.query.config import Need
from assft.query.strategies.base import (
    Selection,
    SelectionContext,
    Strategy,
    register_strategy,
    sampling_notes,
    stack_field,
)
from assft.query.strategies.dkd import explain_greedy, greedy_select
from assft.query.summaries import CaseSummary


@register_strategy("assft")
class ASSFTStrategy(Strategy):
    """Full Q (DKD + ASD) with greedy diversity; Q = DKD at cold start (SSL-only model without a head)."""

    requires = frozenset({Need.NORM_STATS, Need.EMBEDDING, Need.PROBS})
    score_based = True

    def cold_start(self, has_head: bool) -> bool:
        """Whether Q = DKD: cold_start 'always', or 'auto' with an SSL-only model."""
        mode = self.config.cold_start
        if mode == "never" and not has_head:
            raise ConfigError("cold_start is 'never' but the model is SSL-only (no head, so no ASD).",
                              fix="use cold_start 'auto' (Q = DKD until a head exists) or a supervised checkpoint")
        return mode == "always" or (mode == "auto" and not has_head)

    def resolve_needs_without_check(self, has_head: bool) -> frozenset[Need]:
        """Drop PROBS at cold start (nothing probability-based is computed then)."""
        if self.cold_start(has_head):
            return self.requires - {Need.PROBS}
        return self.requires

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        cold = self.cold_start(context.has_head)
        if cold and self.config.cold_start_method != "dkd":
            return self.representative_cold_start(pool, context, budget, rng)
        beta = self.power_beta(context)
        ranked, adjusted, alpha = greedy_select(pool, context, budget, rng, use_asd=not cold, beta=beta)
        notes = {"cold_start": cold, **({"cold_start_method": "dkd"} if cold else {}), **adjusted.notes,
                 **sampling_notes(beta, context)}
        if not cold:
            notes["alpha_applied"] = alpha
        return self.finish(ranked, lambda c: explain_greedy(ranked, c, context, adjusted, beta,
                                                            None if cold else alpha), **notes)

    def representative_cold_start(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
                                  rng: np.random.Generator) -> Selection:
        """Cold start by TypiClust (`typicality`) or k-center greedy (`kcenter`) on the embeddings, not by DKD: with
        no labels, the first batch should cover the typical target volumes rather than the most shifted ones."""
        method = self.config.cold_start_method
        pool = sorted(pool, key=lambda s: s.case_id)
        ids, z = [s.case_id for s in pool], stack_field(pool, "embedding")
        if method == "typicality":
            ranked = typiclust_select(ids, z, budget, rng, reference=context.labeled_embeddings,
                                      k_neighbors=self.config.typiclust_neighbors)
            typ, cluster = ranked.columns["typicality"], ranked.columns["cluster"]

            def explain(c: str) -> str:
                return (f"cold start by typicality: most typical of an uncovered cluster (cluster {int(cluster[c])}, "
                        f"typicality {typ[c]:.2f})")
        else:
            ranked = k_center_greedy(ids, z, budget, rng, reference=context.labeled_embeddings)
            dist = ranked.columns["coreset_distance"]

            def explain(c: str) -> str:
                return (f"cold start by k-center: covers the embedding space (distance {dist[c]:.3f} to the nearest "
                        "labeled or chosen volume)")
        notes: dict[str, object] = {"cold_start": True, "cold_start_method": method}
        if self.sampling == "power":
            notes["sampling"] = f"greedy (power sampling does not apply to a {method} cold start)"
        return self.finish(ranked, explain, **notes)
