"""`asd`: Anatomical Segmentation Difficulty only (foreground entropy, class-balanced)."""

from __future__ import annotations

from assft.query.config import Need
from assft.query.strategies.base import ScoreStrategy, register_strategy


@register_strategy("asd")
class ASDStrategy(ScoreStrategy):
    """Highest ASD: mean entropy over the adaptive foreground, class-balanced (method.md)."""

    requires = frozenset({Need.PROBS})
    score_field = "asd"

    def explain(self, score: float) -> str:
        """A hard foreground."""
        return f"hard foreground (ASD {score:.3f})"
