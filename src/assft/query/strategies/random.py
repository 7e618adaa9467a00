"""`random`, `fg-random` and `fg-random-33`: uniform and foreground-aware random (nnActive's simple baselines).

nnActive (MIC-DKFZ/nnActive, `strategies/randomlabel.py` and `randomlabel2.py`) queries patches: each patch is drawn
either anywhere in a volume or centred on a (ground-truth) foreground or border voxel, the area chosen uniformly from
["all", "seg", "border"] ("random-label", 66 % foreground) or from four "all" and one each of "seg" and "border"
("random-label2", 33 % foreground). assft queries whole volumes from the model's *predicted* foreground (no peek at
labels), so its analogues are: `fg-random`, every pick size-weighted among volumes with a predicted foreground (the
100 % end), and `fg-random-33`, each pick size-weighted with probability 1/3 and uniform otherwise.
"""

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


@register_strategy("fg-random-33")
class FgRandom33Strategy(Strategy):
    """Each pick, in turn: with probability 1/3 drawn like `fg-random` (weighted by predicted foreground size among
    the remaining volumes with one), otherwise uniformly among all remaining volumes (nnActive's 33 % variant)."""

    requires = frozenset({Need.PROBS})
    fg_share = 1.0 / 3.0  # nnActive's random-label2: 2 foreground areas ("seg", "border") among 6

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        check_budget(budget, len(pool))
        sizes = field_scores(pool, "predicted_foreground_voxels")
        ids, _, _ = canonical_order(list(sizes), rng)
        weights = np.asarray([max(sizes[c], 0.0) for c in ids], dtype=np.float64)
        remaining = list(range(len(ids)))
        how: dict[str, str] = {}
        while remaining:
            left = weights[remaining]
            if rng.random() < self.fg_share and left.sum() > 0:
                index = int(rng.choice(len(remaining), p=left / left.sum()))
                how[ids[remaining[index]]] = "foreground"
            else:  # the uniform draw, and the foreground draw once no volume with a foreground is left
                index = int(rng.integers(len(remaining)))
                how[ids[remaining[index]]] = "uniform"
            remaining.pop(index)
        ranking = list(how)  # insertion order = draw order

        def explain(case_id: str) -> str:
            if how[case_id] == "foreground":
                return f"foreground draw (1 in 3), weighted by predicted foreground ({int(sizes[case_id])} voxels)"
            return "uniform draw (2 in 3)"

        columns = {"fg_voxels": sizes, "fg_draw": {c: float(how[c] == "foreground") for c in ids}}
        return self.finish(Ranked(ranking[:budget], ranking, columns), explain)
