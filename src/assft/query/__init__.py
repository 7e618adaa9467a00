"""Query: one streaming pass per volume -> CaseSummary; pure scores; registered strategies; greedy selection.

Names load lazily (assft.utils.lazy): `import assft.query.config` must not import torch and MONAI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS = {
    "assft.data.splits": ("read_case_ids",),
    "assft.metrics.scores": (
        "compute_asd", "compute_bald", "compute_box_max_mean", "compute_class_pe", "compute_confidence",
        "compute_diversity", "compute_foreground_mask", "compute_gaussian_kl", "compute_gradient_embedding",
        "compute_knowledge_divergence", "compute_otsu_threshold", "compute_voxel_entropy"
    ),
    "assft.models.source_stats": (
        "attach_fingerprint", "load_fingerprint", "resolve_source_stats", "running_stats", "save_fingerprint"
    ),
    "assft.query.api": ("QueryResult", "run_query", "save_query_result"),
    "assft.query.clustering": ("compute_typicality", "k_center_greedy", "kmeans_pp_select", "typiclust_select"),
    "assft.query.config": ("Need", "QueryConfig", "parse_budget", "resolve_budget"),
    "assft.query.knowledge": ("adjust_kd", "compute_kd_spread", "compute_pool_typicality"),
    "assft.query.power": ("compute_beta_schedule", "compute_power_scores", "resolve_power_beta"),
    "assft.query.scorer": ("QueryModel", "iter_summaries", "load_query_model", "score_cases"),
    "assft.query.selection": ("greedy_diverse_top_k", "min_max_normalise", "power_top_k", "top_k"),
    "assft.query.strategies": ("STRATEGIES", "Selection", "SelectionContext", "Strategy", "make_strategy"),
    "assft.query.stratified": ("class_stratified_select", "split_stratified_budget"),
    "assft.query.summaries": ("CaseSummary", "summarize_pass", "summarize_probs"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    from assft.query.api import QueryResult, run_query, save_query_result
    from assft.query.clustering import compute_typicality, k_center_greedy, kmeans_pp_select, typiclust_select
    from assft.query.config import Need, QueryConfig, parse_budget, resolve_budget
    from assft.query.knowledge import adjust_kd, compute_kd_spread, compute_pool_typicality
    from assft.query.power import compute_beta_schedule, compute_power_scores, resolve_power_beta
    from assft.query.scorer import QueryModel, iter_summaries, load_query_model, score_cases
    from assft.query.selection import greedy_diverse_top_k, min_max_normalise, power_top_k, top_k
    from assft.query.strategies import STRATEGIES, Selection, SelectionContext, Strategy, make_strategy
    from assft.query.stratified import class_stratified_select, split_stratified_budget
    from assft.query.summaries import CaseSummary, summarize_pass, summarize_probs
