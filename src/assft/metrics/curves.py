"""Budget curves: area under the budget curve (AUBC, trapezoid, normalised), interpolation and gap closed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from assft.errors import ConfigError, DataError

__all__ = ["compute_aubc", "compute_gap_closed", "interpolate_at_budget"]


def _check_curve(budgets: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate a score-vs-budget curve of N >= 2 points; return (budgets, scores) sorted by budget, float64 (N,)."""
    x = np.asarray(budgets, dtype=np.float64).reshape(-1)
    y = np.asarray(scores, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(
            f"budgets has {x.size} values but scores has {y.size}; expected one score per budget.",
            fix="pass budgets and scores of the same length",
        )
    if x.size < 2:
        raise DataError(f"a budget curve needs at least 2 points; got {x.size}.")
    for name, values in (("budgets", x), ("scores", y)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(
                f"{name} contains NaN/inf at positions {bad.tolist()}; expected finite numbers.",
                fix="drop or recompute the rounds whose metrics failed",
            )
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    duplicates = np.unique(x[1:][np.diff(x) == 0])
    if duplicates.size:
        raise DataError(
            f"budgets contains repeated values {duplicates.tolist()}; expected one score per budget.",
            fix="average the scores of repeated budgets (e.g. over seeds) before building the curve",
        )
    return x, y


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid-rule integral of y over sorted x, both (N,)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def compute_aubc(
    budgets: Sequence[float],
    scores: Sequence[float],
    *,
    max_budget: float | None = None,
    min_budget: float | None = None,
) -> float:
    """Area under the score-vs-budget curve (N points) by the trapezoid rule, divided by the budget range.

    A constant curve at ``s`` gives ``s``; scores in [0, 1] give an AUBC in [0, 1]. Points may come in any order.
    ``min_budget``/``max_budget`` restrict the range (default: the smallest/largest budget); the curve is linearly
    interpolated at the new ends and is never extrapolated.

    Args:
        budgets: N >= 2 distinct finite budgets (e.g. number of labelled cases).
        scores: N finite scores, one per budget (e.g. mean Dice).
        max_budget: upper end of the integration range, inside the observed budgets.
        min_budget: lower end of the integration range, inside the observed budgets.

    Returns:
        The normalised area, a float.

    Raises:
        DataError: mismatched lengths, fewer than 2 points, NaN/inf, or repeated budgets.
        ConfigError: the requested range is empty or outside the observed budgets.
    """
    x, y = _check_curve(budgets, scores)
    low = float(x[0]) if min_budget is None else float(min_budget)
    high = float(x[-1]) if max_budget is None else float(max_budget)
    if not (math.isfinite(low) and math.isfinite(high)) or low < x[0] or high > x[-1]:
        raise ConfigError(
            f"budget range [{low}, {high}] is outside the observed budgets [{x[0]}, {x[-1]}]; AUBC never "
            "extrapolates.",
            fix="choose min_budget/max_budget within the budgets that were run",
        )
    if high <= low:
        raise ConfigError(f"max_budget ({high}) must be greater than min_budget ({low}).")
    inside = (x > low) & (x < high)
    xs = np.concatenate([[low], x[inside], [high]])
    ys = np.concatenate([[np.interp(low, x, y)], y[inside], [np.interp(high, x, y)]])
    return _trapezoid(xs, ys) / (high - low)


def interpolate_at_budget(budgets: Sequence[float], scores: Sequence[float], budget: float) -> float:
    """Score at ``budget`` by linear interpolation of an N-point curve (any order); no extrapolation.

    Args:
        budgets: N >= 2 distinct finite budgets.
        scores: N finite scores, one per budget.
        budget: where to read the curve; must lie within [min(budgets), max(budgets)].

    Returns:
        The interpolated score, a float.

    Raises:
        DataError: invalid curve (see ``compute_aubc``).
        ConfigError: ``budget`` is NaN or outside the observed range.
    """
    x, y = _check_curve(budgets, scores)
    budget = float(budget)
    if not math.isfinite(budget) or budget < x[0] or budget > x[-1]:
        raise ConfigError(
            f"budget {budget} is outside the observed budgets [{x[0]}, {x[-1]}]; no extrapolation is done.",
            fix="ask for a budget within the range that was run",
        )
    return float(np.interp(budget, x, y))


def compute_gap_closed(score: float, lower: float, upper: float) -> float:
    """Fraction of the gap closed, ``(score - lower) / (upper - lower)`` (scalars; e.g. source-only -> fully labelled).

    Args:
        score: the score reached (e.g. Dice after adaptation).
        lower: the reference lower bound (e.g. the source model on the target domain).
        upper: the reference upper bound (e.g. fully supervised on the target domain).

    Returns:
        0.0 at ``lower``, 1.0 at ``upper``; may leave [0, 1] when the score is outside the bounds.

    Raises:
        DataError: any input is NaN/inf, or ``upper == lower`` (the gap is undefined).
    """
    values = {"score": float(score), "lower": float(lower), "upper": float(upper)}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise DataError(f"gap closed needs finite numbers; got {values} (non-finite: {bad}).")
    gap = values["upper"] - values["lower"]
    if gap == 0:
        raise DataError(
            f"upper and lower bounds are equal ({values['upper']}); the gap closed is undefined.",
            fix="check that the bounds come from different models (e.g. source-only vs fully labelled)",
        )
    return (values["score"] - values["lower"]) / gap
