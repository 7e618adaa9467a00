"""Query strategies, one small class each, registered by name in STRATEGIES (importing this registers them all)."""

from assft.query.strategies import asd, assft, badge, bald, coreset, dkd, entropy, random, typiclust  # noqa: F401
from assft.query.strategies.base import (
    STRATEGIES,
    Selection,
    SelectionContext,
    Strategy,
    make_strategy,
    register_strategy,
)

__all__ = ["STRATEGIES", "Selection", "SelectionContext", "Strategy", "make_strategy", "register_strategy"]
