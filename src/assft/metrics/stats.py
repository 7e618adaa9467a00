"""Paired tests across seeds/domains (Wilcoxon, paired t), pairwise win matrix and bootstrap confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

from assft.errors import ConfigError, DataError

__all__ = ["PAIRED_TEST_METHODS", "bootstrap_ci", "holm", "paired_effect", "paired_test", "win_matrix"]

PAIRED_TEST_METHODS: tuple[str, ...] = ("wilcoxon", "ttest")


def _as_finite_vector(values: Sequence[float], name: str) -> np.ndarray:
    """Convert a sequence of N numbers to a float64 (N,) array, rejecting NaN/inf."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"{name} contains NaN/inf at positions {bad.tolist()}; expected finite numbers.")
    return array


def _check_method(method: str) -> None:
    """Raise ConfigError unless ``method`` is a known paired test."""
    if method not in PAIRED_TEST_METHODS:
        raise ConfigError(f"unknown paired test {method!r}; expected one of {list(PAIRED_TEST_METHODS)}.")


def paired_test(
    a: Sequence[float], b: Sequence[float], method: Literal["wilcoxon", "ttest"] = "wilcoxon"
) -> dict[str, Any]:
    """Two-sided paired test of a vs b, both (N,) paired by position (same seeds/domains in the same order).

    Args:
        a: N scores of the first method.
        b: N scores of the second method.
        method: ``"wilcoxon"`` (signed-rank, zero differences dropped) or ``"ttest"`` (paired t-test).

    Returns:
        ``{"statistic", "p_value", "mean_diff" (mean of a - b), "n", "method", "note"}``. All-zero differences give
        ``p_value=1.0``; constant non-zero differences under the t-test give ``statistic=±inf, p_value=0.0``;
        N < 2 gives ``statistic=p_value=nan`` with a note. ``note`` is ``""`` otherwise.

    Raises:
        DataError: lengths differ or values are NaN/inf.
        ConfigError: unknown method.
    """
    _check_method(method)
    x, y = _as_finite_vector(a, "a"), _as_finite_vector(b, "b")
    if x.shape != y.shape:
        raise DataError(
            f"paired test needs equal lengths; a has {x.size} values and b has {y.size}.",
            fix="pair the scores by seed/domain so both lists have one value per run",
        )
    diff = x - y
    n = int(diff.size)
    mean_diff = float(diff.mean()) if n else math.nan
    out: dict[str, Any] = {"statistic": math.nan, "p_value": math.nan, "mean_diff": mean_diff, "n": n,
                           "method": method, "note": ""}
    if n < 2:
        out["note"] = f"need at least 2 pairs for a paired test; got {n}."
        return out
    if np.all(diff == 0):
        out.update(statistic=0.0, p_value=1.0, note="all paired differences are zero.")
        return out
    if method == "ttest" and np.ptp(diff) == 0:  # zero variance: t is infinite, scipy would warn
        out.update(statistic=math.copysign(math.inf, mean_diff), p_value=0.0,
                   note="all paired differences are equal and non-zero.")
        return out
    result = stats.wilcoxon(x, y) if method == "wilcoxon" else stats.ttest_rel(x, y)
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue))
    return out


def win_matrix(
    results: Mapping[str, Sequence[float]],
    alpha: float = 0.05,
    method: Literal["wilcoxon", "ttest"] = "wilcoxon",
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Pairwise significance matrix over S strategies, each with N paired scores (same seeds/domains order).

    ``matrix[i][j]`` is +1 if strategy i is significantly better than j (p < alpha and better mean difference),
    -1 if significantly worse, else 0; the matrix is antisymmetric and ``p_values`` is symmetric (1.0 on the
    diagonal).

    Args:
        results: {strategy name: N scores}, all of the same length N.
        alpha: significance level in (0, 1).
        method: paired test, see ``paired_test``.
        higher_is_better: False for metrics such as HD95 where lower is better.

    Returns:
        ``{"strategies": [S names], "matrix": S x S ints, "p_values": S x S floats, "wins": {name: int},
        "losses": {name: int}}``.

    Raises:
        DataError: no strategies, or score lists of different lengths or with NaN/inf.
        ConfigError: alpha outside (0, 1) or unknown method.
    """
    _check_method(method)
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be in (0, 1); got {alpha!r}.")
    names = list(results)
    if not names:
        raise DataError("win_matrix got no strategies.", fix="pass {strategy name: scores per seed}")
    vectors = {name: _as_finite_vector(results[name], f"scores of {name!r}") for name in names}
    lengths = {name: int(v.size) for name, v in vectors.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"strategies have different numbers of paired scores: {lengths}.",
            fix="give every strategy one score per seed/domain, in the same order",
        )

    size = len(names)
    matrix = [[0] * size for _ in range(size)]
    p_values = [[1.0] * size for _ in range(size)]
    sign = 1.0 if higher_is_better else -1.0
    for i in range(size):
        for j in range(i + 1, size):
            test = paired_test(vectors[names[i]], vectors[names[j]], method=method)
            p_value, advantage = test["p_value"], sign * test["mean_diff"]
            p_values[i][j] = p_values[j][i] = p_value
            if p_value < alpha and advantage != 0:  # NaN p (N < 2) compares False: no decision
                matrix[i][j] = 1 if advantage > 0 else -1
                matrix[j][i] = -matrix[i][j]
    wins = {name: sum(1 for v in matrix[i] if v > 0) for i, name in enumerate(names)}
    losses = {name: sum(1 for v in matrix[i] if v < 0) for i, name in enumerate(names)}
    return {"strategies": names, "matrix": matrix, "p_values": p_values, "wins": wins, "losses": losses}


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) confidence interval of the mean of N values, resampled with a seeded rng.

    Args:
        values: N >= 1 finite values (e.g. Dice per seed).
        n_boot: number of bootstrap resamples (>= 1).
        alpha: two-sided level in (0, 1); the interval spans quantiles alpha/2 and 1 - alpha/2.
        seed: seed of the ``numpy.random.Generator``; same seed, same interval.

    Returns:
        ``(low, high)`` floats; ``(v, v)`` for a single value.

    Raises:
        DataError: no values or NaN/inf.
        ConfigError: n_boot < 1 or alpha outside (0, 1).
    """
    array = _as_finite_vector(values, "values")
    if array.size == 0:
        raise DataError("bootstrap_ci got no values.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"n_boot must be an integer >= 1; got {n_boot!r}.")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be in (0, 1); got {alpha!r}.")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, array.size, size=(int(n_boot), array.size))
    means = array[indices].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (family-wise error control) of m tests, in the input order.

    The k-th smallest p (k = 1..m) becomes max over j <= k of min(1, (m - j + 1) * p_(j)); None/NaN entries are
    left out of the family and returned as None.
    """
    valid = [(i, float(p)) for i, p in enumerate(p_values) if p is not None and math.isfinite(float(p))]
    m = len(valid)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (index, p) in enumerate(sorted(valid, key=lambda item: item[1])):
        running = max(running, min(1.0, (m - rank) * p))
        out[index] = running
    return out


def paired_effect(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> dict[str, Any]:
    """Effect of a over b on N paired values: mean difference, its percentile bootstrap CI, wins, Wilcoxon p.

    Returns ``{"n", "mean_diff", "ci_low", "ci_high", "wins" (a > b), "losses", "p_value", "note"}``; with N < 2
    the CI and p are None.
    """
    test = paired_test(a, b, "wilcoxon")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    low, high = bootstrap_ci(diff, n_boot=n_boot, alpha=alpha, seed=seed) if diff.size >= 2 else (None, None)
    p_value = test["p_value"] if math.isfinite(test["p_value"]) else None
    return {"n": int(diff.size), "mean_diff": test["mean_diff"], "ci_low": low, "ci_high": high,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "p_value": p_value,
            "note": test["note"]}
