"""`bald`: MC-dropout BALD (T stochastic passes per window, reduced per window in the scorer)."""

from __future__ import annotations

from assft.query.config import Need
from assft.query.strategies.base import ScoreStrategy, register_strategy


@register_strategy("bald")
class BALDStrategy(ScoreStrategy):
    """Highest mean voxel BALD (mutual information between prediction and weights, MC dropout, T samples)."""

    requires = frozenset({Need.MC_PROBS})
    score_field = "bald"

    def explain(self, score: float) -> str:
        """MC-dropout samples that disagree."""
        return f"MC-dropout samples disagree (BALD {score:.4f} nats, T={self.config.mc_samples})"
