"""Query: one streaming pass per volume -> CaseSummary; pure scores; registered strategies; greedy selection.

Names load lazily (assft.utils.lazy): `import assft.query.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "read_case_ids": "assft.data.splits", "compute_asd": "assft.metrics.scores",
    "compute_bald": "assft.metrics.scores", "compute_box_max_mean": "assft.metrics.scores",
    "compute_class_pe": "assft.metrics.scores", "compute_confidence": "assft.metrics.scores",
    "compute_diversity": "assft.metrics.scores", "compute_foreground_mask": "assft.metrics.scores",
    "compute_gaussian_kl": "assft.metrics.scores", "compute_gradient_embedding": "assft.metrics.scores",
    "compute_knowledge_divergence": "assft.metrics.scores", "compute_otsu_threshold": "assft.metrics.scores",
    "compute_voxel_entropy": "assft.metrics.scores", "attach_fingerprint": "assft.models.source_stats",
    "load_fingerprint": "assft.models.source_stats", "resolve_source_stats": "assft.models.source_stats",
    "running_stats": "assft.models.source_stats", "save_fingerprint": "assft.models.source_stats",
    "QueryResult": "assft.query.api", "run_query": "assft.query.api", "save_query_result": "assft.query.api",
    "ScoredPool": "assft.query.api", "score_pool": "assft.query.api",
    "compute_typicality": "assft.query.clustering", "k_center_greedy": "assft.query.clustering",
    "kmeans_pp_select": "assft.query.clustering", "typiclust_select": "assft.query.clustering",
    "Need": "assft.query.config", "QueryConfig": "assft.query.config", "parse_budget": "assft.query.config",
    "resolve_budget": "assft.query.config", "adjust_kd": "assft.query.knowledge",
    "compute_kd_spread": "assft.query.knowledge", "compute_pool_typicality": "assft.query.knowledge",
    "compute_beta_schedule": "assft.query.power", "compute_power_scores": "assft.query.power",
    "resolve_power_beta": "assft.query.power", "QueryModel": "assft.query.scorer",
    "iter_summaries": "assft.query.scorer", "load_query_model": "assft.query.scorer",
    "score_cases": "assft.query.scorer", "greedy_diverse_top_k": "assft.query.selection",
    "min_max_normalise": "assft.query.selection", "power_top_k": "assft.query.selection",
    "top_k": "assft.query.selection", "STRATEGIES": "assft.query.strategies", "Selection": "assft.query.strategies",
    "SelectionContext": "assft.query.strategies", "Strategy": "assft.query.strategies",
    "make_strategy": "assft.query.strategies", "class_stratified_select": "assft.query.stratified",
    "split_stratified_budget": "assft.query.stratified", "CaseSummary": "assft.query.summaries",
    "summarize_pass": "assft.query.summaries", "summarize_probs": "assft.query.summaries",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.data.splits import read_case_ids
    from assft.metrics.scores import (
        compute_asd, compute_bald, compute_box_max_mean, compute_class_pe, compute_confidence,
        compute_diversity, compute_foreground_mask, compute_gaussian_kl, compute_gradient_embedding,
        compute_knowledge_divergence, compute_otsu_threshold, compute_voxel_entropy,
    )
    from assft.models.source_stats import (
        attach_fingerprint, load_fingerprint, resolve_source_stats, running_stats, save_fingerprint,
    )
    from assft.query.api import QueryResult, ScoredPool, run_query, save_query_result, score_pool
    from assft.query.clustering import compute_typicality, k_center_greedy, kmeans_pp_select, typiclust_select
    from assft.query.config import Need, QueryConfig, parse_budget, resolve_budget
    from assft.query.knowledge import adjust_kd, compute_kd_spread, compute_pool_typicality
    from assft.query.power import compute_beta_schedule, compute_power_scores, resolve_power_beta
    from assft.query.scorer import QueryModel, iter_summaries, load_query_model, score_cases
    from assft.query.selection import greedy_diverse_top_k, min_max_normalise, power_top_k, top_k
    from assft.query.strategies import STRATEGIES, Selection, SelectionContext, Strategy, make_strategy
    from assft.query.stratified import class_stratified_select, split_stratified_budget
    from assft.query.summaries import CaseSummary, summarize_pass, summarize_probs
