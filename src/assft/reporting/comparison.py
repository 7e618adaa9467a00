"""Comparisons between strategies: AUBC rank per domain, the pairwise win matrix and `assft` vs `fg-random`.

Per-run AUBC values are paired by (domain, seed): the same seed on the same domain shares its split and start model,
so pooling domains gives more pairs. A two-sided Wilcoxon signed-rank test over n pairs cannot give p below
2 / 2**n, so fewer than 6 pairs can never be significant at alpha = 0.05; the report says so instead of hiding it.
"""

from __future__ import annotations

from typing import Any, Literal

from assft.metrics.stats import paired_test, win_matrix
from assft.reporting.runs import RunSet
from assft.reporting.summary import run_aubc

__all__ = ["METHOD_OF_INTEREST", "REFERENCE_BASELINE", "aubc_by_pair", "compare_runs", "rank_strategies"]

METHOD_OF_INTEREST = "assft"
REFERENCE_BASELINE = "fg-random"  # the strongest simple baseline (method.md "Baselines")
Key = tuple[str, int]  # (domain, seed)


def aubc_by_pair(runset: RunSet) -> dict[str, dict[Key, float]]:
    """{strategy: {(domain, seed): AUBC}} for every run whose AUBC is defined."""
    out: dict[str, dict[Key, float]] = {}
    for run in runset.runs:
        value = run_aubc(run)
        if value is not None:
            out.setdefault(run.strategy, {})[(run.domain, run.seed)] = value
    return out


def rank_strategies(means: dict[str, float | None]) -> dict[str, int | None]:
    """Competition ranks ("1224") of {strategy: mean AUBC}, 1 = highest; None for a missing mean."""
    values = [v for v in means.values() if v is not None]
    return {name: (None if v is None else 1 + sum(1 for other in values if other > v)) for name, v in means.items()}


def _power_note(n: int, alpha: float, method: str) -> str:
    if method == "wilcoxon" and n >= 1 and 2.0 / 2**n >= alpha:
        return (f"only {n} paired value(s): a two-sided Wilcoxon test cannot reach p < {alpha} with fewer than "
                f"{_min_pairs(alpha)} pairs, so no difference can be marked significant.")
    return ""


def _min_pairs(alpha: float) -> int:
    n = 1
    while 2.0 / 2**n >= alpha:
        n += 1
    return n


def compare_runs(runset: RunSet, summary: dict[str, Any], *, alpha: float = 0.05,
                 method: Literal["wilcoxon", "ttest"] = "wilcoxon") -> dict[str, Any]:
    """Ranks per domain, the win matrix over per-run AUBC paired by (domain, seed), and assft vs fg-random.

    Args:
        runset: the runs.
        summary: the output of `summarize_runs` (its "aubc" means give the ranks).
        alpha: significance level of the win matrix.
        method: paired test ("wilcoxon" or "ttest").

    Returns:
        {"ranks": {domain: {strategy: rank}}, "win_matrix": {...win_matrix fields, "pairs", "n_pairs", "alpha",
        "method", "metric", "note"} or None (fewer than 2 strategies), "assft_vs_fg_random": {...paired_test fields,
        "pairs"} or None (either strategy missing)}.
    """
    ranks = {domain: rank_strategies({s: row["mean"] for s, row in by_strategy.items()})
             for domain, by_strategy in summary["aubc"].items()}
    scores = aubc_by_pair(runset)
    strategies = [s for s in runset.strategies if s in scores]
    matrix = None
    if len(strategies) >= 2:
        common = sorted(set.intersection(*(set(scores[s]) for s in strategies)))
        values = {s: [scores[s][k] for k in common] for s in strategies}
        matrix = {**win_matrix(values, alpha=alpha, method=method), "pairs": [list(k) for k in common],
                  "n_pairs": len(common), "alpha": alpha, "method": method, "metric": "aubc",
                  "note": _power_note(len(common), alpha, method)}
        if len(common) < 2:
            matrix["note"] = (f"only {len(common)} (domain, seed) pair(s) are shared by every strategy; no test "
                              "was possible.")
    versus = None
    if METHOD_OF_INTEREST in scores and REFERENCE_BASELINE in scores:
        common = sorted(set(scores[METHOD_OF_INTEREST]) & set(scores[REFERENCE_BASELINE]))
        test = paired_test([scores[METHOD_OF_INTEREST][k] for k in common],
                           [scores[REFERENCE_BASELINE][k] for k in common], method=method)
        note = test["note"] or _power_note(len(common), alpha, method)
        versus = {**test, "note": note, "pairs": [list(k) for k in common], "a": METHOD_OF_INTEREST,
                  "b": REFERENCE_BASELINE, "metric": "aubc"}
    return {"ranks": ranks, "win_matrix": matrix, "assft_vs_fg_random": versus}
