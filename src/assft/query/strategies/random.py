"""`random` and `fg-random` (foreground-aware random: nnActive's strongest simple baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.selection import Ranked, canonical_order, check_budget
from assft.query.strategies.base import Selection, SelectionContext, Strategy, field_scores, register_strategy
from assft.query.summaries import CaseSummary


@register_strategy("random")
class RandomStrategy(Strategy):
    """Uniformly random volumes (seeded); needs no pass at all."""

    requires = frozenset()

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        check_budget(budget, len(pool))
        ids, _, _ = canonical_order([s.case_id for s in pool], rng)
        ranking = [ids[i] for i in rng.permutation(len(ids))]
        return self.finish(Ranked(ranking[:budget], ranking), lambda c: "uniform random draw")


@register_strategy("fg-random")
class FgRandomStrategy(Strategy):
    """Random among volumes with a non-empty predicted foreground, weighted by its size (then the empty ones)."""

    requires = frozenset({Need.PROBS})

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        check_budget(budget, len(pool))
        sizes = field_scores(pool, "predicted_foreground_voxels")
        ids, _, _ = canonical_order(list(sizes), rng)
        weights = np.asarray([sizes[c] for c in ids], dtype=np.float64)
        nonempty = np.flatnonzero(weights > 0)
        empty = np.flatnonzero(weights <= 0)
        order = []
        if nonempty.size:  # weighted sampling without replacement = a size-biased random ranking
            p = weights[nonempty] / weights[nonempty].sum()
            order.extend(nonempty[rng.choice(nonempty.size, size=nonempty.size, replace=False, p=p)])
        order.extend(empty[rng.permutation(empty.size)])
        ranking = [ids[i] for i in order]

        def explain(case_id: str) -> str:
            if sizes[case_id] > 0:
                return f"random, weighted by predicted foreground ({int(sizes[case_id])} voxels)"
            return "random (no volume with predicted foreground left)"

        return self.finish(Ranked(ranking[:budget], ranking, {"fg_voxels": sizes}), explain)
