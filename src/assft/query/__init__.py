"""Query: one streaming pass per volume -> CaseSummary; pure scores; registered strategies; greedy selection."""

from assft.query.api import QueryResult, read_case_ids, run_query, save_query_result
from assft.query.clustering import k_center_greedy, kmeans_pp_select, typiclust_select
from assft.query.config import Need, QueryConfig, parse_budget, resolve_budget
from assft.query.fingerprint import (
    attach_fingerprint,
    compute_fingerprint,
    load_fingerprint,
    resolve_source_stats,
    running_stats,
    save_fingerprint,
)
from assft.query.scorer import QueryModel, iter_summaries, load_query_model, score_cases
from assft.query.scores import (
    compute_asd,
    compute_bald,
    compute_confidence,
    compute_diversity,
    compute_foreground_mask,
    compute_gaussian_kl,
    compute_gradient_embedding,
    compute_knowledge_divergence,
    compute_otsu_threshold,
    compute_voxel_entropy,
)
from assft.query.selection import greedy_diverse_top_k, min_max_normalise, top_k
from assft.query.strategies import STRATEGIES, Selection, SelectionContext, Strategy, make_strategy
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
    "attach_fingerprint",
    "compute_asd",
    "compute_bald",
    "compute_confidence",
    "compute_diversity",
    "compute_fingerprint",
    "compute_foreground_mask",
    "compute_gaussian_kl",
    "compute_gradient_embedding",
    "compute_knowledge_divergence",
    "compute_otsu_threshold",
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
    "read_case_ids",
    "resolve_budget",
    "resolve_source_stats",
    "run_query",
    "running_stats",
    "save_fingerprint",
    "save_query_result",
    "score_cases",
    "summarize_pass",
    "summarize_probs",
    "top_k",
    "typiclust_select",
]
