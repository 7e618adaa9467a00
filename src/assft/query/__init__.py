"""Query: one streaming pass over the pool (`score_pool` -> per-volume `CaseSummary`), then a registered strategy's
`select`; `run_query` composes the two for a one-off query.

Names load lazily (assft.utils.lazy): `import assft.query.config` must not import torch and MONAI. The score math
lives in `assft.metrics.scores`, the source statistics in `assft.models.source_stats`; the selection helpers
(`clustering`, `knowledge`, `power`, `selection`, `stratified`) are imported from their modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Need": "assft.query.config", "QueryConfig": "assft.query.config", "parse_budget": "assft.query.config",
    "resolve_budget": "assft.query.config",
    "ScoredPool": "assft.query.api", "score_pool": "assft.query.api", "run_query": "assft.query.api",
    "QueryResult": "assft.query.result", "save_query_result": "assft.query.result",
    "write_result_figures": "assft.query.result",
    "QueryModel": "assft.query.scorer", "load_query_model": "assft.query.scorer",
    "iter_summaries": "assft.query.scorer", "score_cases": "assft.query.scorer",
    "CaseSummary": "assft.query.summaries", "summarize_pass": "assft.query.summaries",
    "summarize_probs": "assft.query.summaries",
    "STRATEGIES": "assft.query.strategies", "ScoreStrategy": "assft.query.strategies",
    "Selection": "assft.query.strategies", "SelectionContext": "assft.query.strategies",
    "Strategy": "assft.query.strategies", "make_strategy": "assft.query.strategies",
    "register_strategy": "assft.query.strategies",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.query.api import ScoredPool, run_query, score_pool
    from assft.query.config import Need, QueryConfig, parse_budget, resolve_budget
    from assft.query.result import QueryResult, save_query_result, write_result_figures
    from assft.query.scorer import QueryModel, iter_summaries, load_query_model, score_cases
    from assft.query.strategies import (
        STRATEGIES, ScoreStrategy, Selection, SelectionContext, Strategy, make_strategy, register_strategy,
    )
    from assft.query.summaries import CaseSummary, summarize_pass, summarize_probs
