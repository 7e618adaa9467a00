"""`dkd` (Diversified Knowledge Divergence, greedy) and `kd` (knowledge divergence from pre-training only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.selection import Ranked, greedy_diverse_top_k, min_max_normalise, top_k
from assft.query.strategies.base import (
    Selection,
    SelectionContext,
    Strategy,
    field_scores,
    register_strategy,
    stack_field,
)
from assft.query.summaries import CaseSummary


def greedy_select(pool: Sequence[CaseSummary], context: SelectionContext, budget: int, rng: np.random.Generator,
                  *, use_asd: bool) -> Ranked:
    """The greedy DKD (use_asd False: Q = DKD) or full-Q batch over the pool's KD, embeddings and ASD."""
    config = context.config
    kd = field_scores(pool, "kd")
    asd = np.asarray(list(field_scores(pool, "asd").values())) if use_asd else None
    return greedy_diverse_top_k(list(kd), np.asarray(list(kd.values())), stack_field(pool, "embedding"), budget, rng,
                                asd=asd, alpha=config.alpha, combine=config.dkd_combine,
                                reference=context.labeled_embeddings)


def explain_greedy(ranked: Ranked, case_id: str, context: SelectionContext) -> str:
    """One line from the values at pick time, e.g. 'far from pre-training (KD 0.91), unlike chosen ones (Div 0.44),
    hard foreground (ASD 0.63)'; KD and ASD are min-max normalised over the pool, Div is 1 - cos."""
    col = ranked.columns
    parts = []
    kd_n = col["KD_norm"][case_id]
    parts.append(f"{'far from' if kd_n >= 0.5 else 'close to'} pre-training (KD {kd_n:.2f})")
    first = ranked.selected and ranked.selected[0] == case_id
    if first and not len(context.labeled_ids):
        others = "the pool average"
    else:
        others = "labeled and chosen ones" if len(context.labeled_ids) else "chosen ones"
    div, div_n = col["Div"][case_id], col["Div_norm"][case_id]
    parts.append(f"{'unlike' if div_n >= 0.5 else 'similar to'} {others} (Div {div:.3g})")
    if "ASD_norm" in col and case_id in col["ASD_norm"]:
        asd_n = col["ASD_norm"][case_id]
        parts.append(f"{'hard' if asd_n >= 0.5 else 'easy'} foreground (ASD {asd_n:.2f})")
    return ", ".join(parts)


@register_strategy("dkd")
class DKDStrategy(Strategy):
    """Greedy DKD = norm(KD) x Div, Div recomputed after every pick (no ASD)."""

    requires = frozenset({Need.NORM_STATS, Need.EMBEDDING})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        ranked = greedy_select(pool, context, budget, rng, use_asd=False)
        return self.finish(ranked, lambda c: explain_greedy(ranked, c, context))


@register_strategy("kd")
class KDStrategy(Strategy):
    """Highest knowledge divergence from pre-training (Gaussian KL of norm-layer statistics), no diversity."""

    requires = frozenset({Need.NORM_STATS})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        scores = field_scores(pool, "kd")
        ranked = top_k(scores, budget, rng)
        ids = list(scores)
        normed = dict(zip(ids, min_max_normalise(np.asarray([scores[c] for c in ids])), strict=True))
        ranked.columns["KD_norm"] = {c: float(v) for c, v in normed.items()}
        return self.finish(ranked, lambda c: f"far from pre-training (KD {scores[c]:.4g}, normalised "
                                             f"{normed[c]:.2f})")
