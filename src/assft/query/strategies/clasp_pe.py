"""`clasp-pe`: class-stratified scheduled power predictive entropy (ClaSP PE, Lüth et al., TMLR 2026), per volume.

From the one pass: PE (normalised by log C) and, per foreground class c, U_c = PE * p_c, each reduced to a volume
score by its peak (box maximum or top-k mean, `summaries.class_pe`). A share `clasp.class_fraction` of the round's
budget is dealt round-robin over the classes (best remaining volume by class score), the rest by plain PE; scores are
power-noised with beta rising from 1 to 100 over the campaign's rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assft.query.config import Need
from assft.query.strategies.base import (
    Selection,
    SelectionContext,
    Strategy,
    power_note,
    register_strategy,
    sampling_notes,
    stack_field,
)
from assft.query.stratified import class_stratified_select, split_stratified_budget
from assft.query.summaries import CaseSummary


@register_strategy("clasp-pe")
class ClaSPPEStrategy(Strategy):
    """ClaSP PE: 66 % of the budget by per-class PE * p_c peaks, round-robin over classes, the rest by PE; power."""

    requires = frozenset({Need.PROBS, Need.CLASS_PE})
    score_based = True
    default_sampling = "power"

    def select(self, pool: Sequence[CaseSummary], context: SelectionContext, budget: int,
               rng: np.random.Generator) -> Selection:
        config = self.config
        pool = sorted(pool, key=lambda s: s.case_id)
        ids = [s.case_id for s in pool]
        scores = stack_field(pool, "class_pe").astype(np.float64)
        n_classes = scores.shape[1] - 1
        # rotate the class that takes an odd pick from round to round, so no class is always favoured
        first = (context.round_index - 1) % n_classes if context.round_index else 0
        beta = self.power_beta(context)
        ranked = class_stratified_select(ids, scores, budget, rng, beta=beta, first_class=first,
                                         class_fraction=config.clasp.class_fraction, eps=config.power.eps)
        part = ranked.columns["clasp_part"]
        pe = ranked.columns["PE"]

        def explain(case_id: str) -> str:
            c = int(part[case_id])
            if c == 0:
                return f"uncertain prediction (peak PE {pe[case_id]:.3f}){power_note(beta)}"
            name = context.class_names.get(c)
            label = f"class {c} ({name})" if name else f"class {c}"
            return f"{label} uncertainty (peak PE x p {ranked.columns[f'U_{c}'][case_id]:.3f}){power_note(beta)}"

        per_class = split_stratified_budget(budget, n_classes, config.clasp.class_fraction, first)
        counts = {str(c + 1): per_class.count(c) for c in range(n_classes)}
        return self.finish(ranked, explain, clasp_class_picks=counts, clasp_pe_picks=budget - len(per_class),
                           **sampling_notes(beta, context))
