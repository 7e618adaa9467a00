"""Evaluation metrics: per-case segmentation metrics, budget curves and paired statistics.

Names load lazily (assft.utils.lazy): `assft.metrics.curves` (the budget curves a campaign's status reads) must not
import torch, MONAI and scipy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "compute_aubc": "assft.metrics.curves", "compute_gap_closed": "assft.metrics.curves",
    "interpolate_at_budget": "assft.metrics.curves",
    "METRIC_NAMES": "assft.metrics.segmentation", "compute_case_metrics": "assft.metrics.segmentation",
    "summarize_metrics": "assft.metrics.segmentation",
    "PAIRED_TEST_METHODS": "assft.metrics.stats", "bootstrap_ci": "assft.metrics.stats",
    "paired_test": "assft.metrics.stats", "win_matrix": "assft.metrics.stats",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from assft.metrics.curves import compute_aubc, compute_gap_closed, interpolate_at_budget
    from assft.metrics.segmentation import METRIC_NAMES, compute_case_metrics, summarize_metrics
    from assft.metrics.stats import PAIRED_TEST_METHODS, bootstrap_ci, paired_test, win_matrix
