"""Query strategies, one small class each, registered by name in STRATEGIES (importing this registers them all)."""

from assft.query.strategies import (  # noqa: F401
    asd,
    assft,
    assft_strata,
    badge,
    bald,
    clasp_pe,
    coreset,
    dkd,
    entropy,
    random,
    typiclust,
)
from assft.query.strategies.base import (
    STRATEGIES,
    ScoreStrategy,
    Selection,
    SelectionContext,
    Strategy,
    make_strategy,
    register_strategy,
)

__all__ = ["STRATEGIES", "ScoreStrategy", "Selection", "SelectionContext", "Strategy", "make_strategy",
           "register_strategy"]
