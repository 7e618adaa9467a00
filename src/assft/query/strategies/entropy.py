"""`entropy`: the volumes with the highest mean normalised voxel entropy."""

from __future__ import annotations

from assft.query.config import Need
from assft.query.strategies.base import ScoreStrategy, register_strategy


@register_strategy("entropy")
class EntropyStrategy(ScoreStrategy):
    """Highest mean voxel entropy over the whole volume (normalised by log C)."""

    requires = frozenset({Need.PROBS})
    score_field = "entropy"

    def explain(self, score: float) -> str:
        """An uncertain prediction."""
        return f"uncertain prediction (mean entropy {score:.3f})"
