"""Query: one streaming pass per volume -> CaseSummary; pure scores; registered strategies; greedy selection."""

from assft.data.splits import read_case_ids  # one reader of id files; re-exported for the query API
from assft.query.api import QueryResult, run_query, save_query_result
from assft.query.clustering import compute_typicality, k_center_greedy, kmeans_pp_select, typiclust_select
from assft.query.config import Need, QueryConfig, parse_budget, resolve_budget
from assft.models.source_stats import (
    attach_fingerprint,
    load_fingerprint,
    resolve_source_stats,
    running_stats,
    save_fingerprint,
)
from assft.query.knowledge import adjust_kd, compute_kd_spread, compute_pool_typicality
from assft.query.power import compute_beta_schedule, compute_power_scores, resolve_power_beta
from assft.query.scorer import QueryModel, iter_summaries, load_query_model, score_cases
from assft.metrics.scores import (
    compute_asd,
    compute_bald,
    compute_box_max_mean,
    compute_class_pe,
    compute_confidence,
    compute_diversity,
    compute_foreground_mask,
    compute_gaussian_kl,
    compute_gradient_embedding,
    compute_knowledge_divergence,
    compute_otsu_threshold,
    compute_voxel_entropy,
)
from assft.query.selection import greedy_diverse_top_k, min_max_normalise, power_top_k, top_k
from assft.query.strategies import STRATEGIES, Selection, SelectionContext, Strategy, make_strategy
from assft.query.stratified import class_stratified_select, split_stratified_budget
from assft.query.summaries import CaseSummary, summarize_pass, summarize_probs

__all__ = [
    "STRATEGIES",
    "CaseSummary",
    "Need",
    "QueryConfig",
    "QueryModel",
    "QueryResult",
    "Selection",
    "SelectionContext",
    "Strategy",
    "adjust_kd",
    "attach_fingerprint",
    "class_stratified_select",
    "compute_asd",
    "compute_bald",
    "compute_beta_schedule",
    "compute_box_max_mean",
    "compute_class_pe",
    "compute_confidence",
    "compute_diversity",
    "compute_foreground_mask",
    "compute_gaussian_kl",
    "compute_gradient_embedding",
    "compute_kd_spread",
    "compute_knowledge_divergence",
    "compute_otsu_threshold",
    "compute_pool_typicality",
    "compute_power_scores",
    "compute_typicality",
    "compute_voxel_entropy",
    "greedy_diverse_top_k",
    "iter_summaries",
    "k_center_greedy",
    "kmeans_pp_select",
    "load_fingerprint",
    "load_query_model",
    "make_strategy",
    "min_max_normalise",
    "parse_budget",
    "power_top_k",
    "read_case_ids",
    "resolve_budget",
    "resolve_power_beta",
    "resolve_source_stats",
    "run_query",
    "running_stats",
    "save_fingerprint",
    "save_query_result",
    "score_cases",
    "split_stratified_budget",
    "summarize_pass",
    "summarize_probs",
    "top_k",
    "typiclust_select",
]
