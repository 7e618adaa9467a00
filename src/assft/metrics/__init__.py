"""Evaluation metrics: per-case segmentation metrics, budget curves and paired statistics."""

from assft.metrics.curves import compute_aubc, compute_gap_closed, interpolate_at_budget
from assft.metrics.segmentation import METRIC_NAMES, compute_case_metrics, summarize_metrics
from assft.metrics.stats import PAIRED_TEST_METHODS, bootstrap_ci, paired_test, win_matrix

__all__ = [
    "METRIC_NAMES",
    "PAIRED_TEST_METHODS",
    "bootstrap_ci",
    "compute_aubc",
    "compute_case_metrics",
    "compute_gap_closed",
    "interpolate_at_budget",
    "paired_test",
    "summarize_metrics",
    "win_matrix",
]
