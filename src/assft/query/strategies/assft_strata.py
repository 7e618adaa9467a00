"""`assft-strata`: assft's per-volume score, picked one per embedding cluster instead of by the greedy Div term.

Why a second form of Q: on heterogeneous pools the greedy DKD batch spends its picks on the site θ0 sees worst,
while plain random covers every site in proportion to its size. Here the pool's embeddings are split into
|L| + budget k-means clusters (TypiClust's cover: the clusters with the fewest labeled or picked members first,
largest first), and inside each cluster the volume with the highest alpha * norm(KD) + (1 - alpha) * norm(ASD)
is taken, so every site gets picks in proportion and, within a site, the knowledge gap and the foreground
uncertainty decide. alpha follows the same spread rule as `assft`; without a head (SSL-only θ0) the score is KD.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.clustering import cluster_cover_select
from assft.query.config import Need
from assft.query.selection import min_max_normalise
from assft.query.strategies.base import Selection, SelectionContext, Strategy, field_scores, register_strategy
from assft.query.strategies.dkd import kd_columns, pool_kd
from assft.query.summaries import CaseSummary


@register_strategy("assft-strata")
class StratifiedASSFTStrategy(Strategy):
    """One pick per uncovered embedding cluster, the highest KD + ASD score inside it (no greedy Div term)."""

    requires = frozenset({Need.NORM_STATS, Need.EMBEDDING, Need.PROBS})

    def resolve_needs_without_check(self, has_head: bool) -> frozenset[Need]:
        """Without a head there are no probabilities: the score is KD alone."""
        return self.requires if has_head else self.requires - {Need.PROBS}

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        config = context.config
        ids, raw, z, adjusted = pool_kd(pool, config, with_embeddings=True)
        kd_norm = min_max_normalise(adjusted.values)
        alpha = 1.0
        asd_norm = np.zeros(len(ids))
        if context.has_head:
            asd = field_scores(pool, "asd")
            asd_norm = min_max_normalise(np.asarray([asd[c] for c in ids], dtype=np.float64))
            alpha = config.alpha_for_spread(float(adjusted.notes["kd_spread"]))  # type: ignore[arg-type]
        score = alpha * kd_norm + (1.0 - alpha) * asd_norm
        ranked = cluster_cover_select(ids, z, score, budget, rng, reference=context.labeled_embeddings)
        ranked.columns.update(kd_columns(ids, raw, adjusted))
        ranked.columns["KD"] = dict(zip(ids, raw.tolist(), strict=True))
        ranked.columns["KD_norm"] = dict(zip(ids, kd_norm.tolist(), strict=True))
        if context.has_head:
            ranked.columns["ASD_norm"] = dict(zip(ids, asd_norm.tolist(), strict=True))
        cluster, value = ranked.columns["cluster"], ranked.columns["score"]

        def explain(case_id: str) -> str:
            return (f"highest score {value[case_id]:.2f} (alpha {alpha:g} x KD + ASD) in embedding cluster "
                    f"{int(cluster[case_id])}, the least covered one left")

        return self.finish(ranked, explain, alpha_applied=alpha, **adjusted.notes)
