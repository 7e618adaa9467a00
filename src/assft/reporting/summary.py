"""Numbers of the report, per (domain, strategy) over seeds: budget curves, AUBC, final metrics, gap closed, per-class
Dice, pseudo-label quality and timings. Pure functions of a `RunSet`; every table of the report reads from here.

Spread over seeds is the sample standard deviation (ddof=1; 0 for a single seed). NaN/inf values are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from assft.errors import AssftError
from assft.metrics.curves import compute_aubc, compute_gap_closed, interpolate_at_budget
from assft.reporting.runs import RunData, RunSet

__all__ = ["COST_AXES", "TIMING_KEYS", "compute_stats", "cost_axis_summary", "run_aubc", "summarize_runs"]

TIMING_KEYS = ("query_s", "finetune_s", "evaluate_s")
FINAL_KEYS = ("mean_dice", "mean_hd95", "mean_nsd")
COST_AXES = ("fg_slices", "fg_slices_min", "structures", "fg_voxels")  # metrics.annotation_cost.COST_FIELDS, by use


def compute_stats(values: Iterable[float | None]) -> dict[str, Any]:
    """{"mean", "std" (ddof=1, 0 for one value), "min", "max", "n"} over the finite values; None entries when n = 0."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "min": float(array.min()), "max": float(array.max()),
            "n": int(array.size)}


def _finite_points(run: RunData, metric: str = "mean_dice") -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(run.budgets, run.curve(metric)) if math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def run_aubc(run: RunData) -> float | None:
    """Normalised AUBC of one run's (labeled volumes, mean Dice) curve over [first budget, last budget], or None.

    The first budget is 0 when the ledger has a baseline (budget-0) point; fewer than 2 points, or a curve that
    `compute_aubc` rejects (e.g. two rounds at the same budget), give None.
    """
    x, y = _finite_points(run)
    if len(x) < 2:
        return None
    try:
        return compute_aubc(x, y)
    except AssftError:
        return None


def _curves(runs: list[RunData]) -> list[dict[str, Any]]:
    """Mean/std/min/max over seeds of mean Dice at each budget (labeled volumes), sorted by budget."""
    by_budget: dict[float, list[float]] = defaultdict(list)
    pool = next((r.pool_size for r in runs if r.pool_size), None)
    for run in runs:
        for x, y in zip(*_finite_points(run)):
            by_budget[x].append(y)
    return [{"budget": x, "fraction": (x / pool if pool else None), **compute_stats(by_budget[x])}
            for x in sorted(by_budget)]


def _gap(run: RunData, bounds: dict[str, Any] | None,
         early_fraction: float) -> tuple[float | None, float | None, float]:
    """(gap closed at the final round, at `early_fraction` of the total budget, that budget) of one run."""
    x, y = _finite_points(run)
    total = run.budget_total or (x[-1] if x else 0.0)
    early_budget = early_fraction * float(total)
    lower = (bounds or {}).get("lower") or {}
    upper = (bounds or {}).get("upper") or {}
    lo, up = lower.get("mean_dice"), upper.get("mean_dice")
    if lo is None or up is None or not x:
        return None, None, early_budget
    try:
        final = compute_gap_closed(y[-1], lo, up)
        early = None
        if len(x) >= 2 and x[0] <= early_budget <= x[-1]:
            early = compute_gap_closed(interpolate_at_budget(x, y, early_budget), lo, up)
    except AssftError:  # equal or non-finite bounds: the gap is undefined
        return None, None, early_budget
    return final, early, early_budget


def _final_metric(run: RunData, key: str) -> float | None:
    value = (run.final or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def pseudo_label_rows(runset: RunSet) -> dict[tuple[str, str], dict[int, list[dict[str, Any]]]]:
    """{(domain, strategy): {round: pseudo-label rows with a true Dice, pooled over seeds}} (evaluated rounds only)."""
    out: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for run in runset.runs:
        for record in run.rounds:
            rows = [p for p in record.pseudo_labels if p.get("true_dice") is not None]
            if rows:
                out.setdefault((run.domain, run.strategy), {}).setdefault(record.round, []).extend(rows)
    return {key: dict(sorted(value.items())) for key, value in sorted(out.items())}


def _pseudo_summary(runset: RunSet) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (domain, strategy), by_round in pseudo_label_rows(runset).items():
        out.setdefault(domain, {})[strategy] = [
            {"round": r,
             "selected": compute_stats(float(p["true_dice"]) for p in rows if p.get("selected")),
             "unselected": compute_stats(float(p["true_dice"]) for p in rows if not p.get("selected"))}
            for r, rows in by_round.items()]
    return out


def _timings(runset: RunSet, strategies: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for strategy in strategies:
        records = [r for run in runset.runs if run.strategy == strategy for r in run.rounds]
        row: dict[str, Any] = {"n_rounds": len(records)}
        for key in TIMING_KEYS:
            row[key] = compute_stats(r.timings.get(key) for r in records)["mean"]
        out[strategy] = row
    return out


def _compute(runset: RunSet, strategies: list[str]) -> dict[str, dict[str, Any]]:
    """Per arm: the distinct optimizer steps per round over every run and round (one value = constant compute)."""
    out: dict[str, dict[str, Any]] = {}
    for strategy in strategies:
        runs = [r for r in runset.runs if r.strategy == strategy]
        steps = sorted({s for r in runs for s in r.steps_per_round if s is not None})
        patches = [p for r in runs for p in r.patches_per_round if p is not None]
        out[strategy] = {"steps_per_round": steps, "recorded": bool(steps),
                         "patches_per_round": float(np.mean(patches)) if patches else None}
    return out


def first_round_change(run: RunData) -> float | None:
    """Round-1 mean Dice minus the start model's (budget-0) mean Dice; None without a baseline or a round."""
    if not run.rounds or not run.baseline or run.baseline.get("mean_dice") is None:
        return None
    value = (run.rounds[0].metrics or {}).get("mean_dice")
    return None if value is None else float(value) - float(run.baseline["mean_dice"])


def cost_axis_summary(runset: RunSet, axis: str) -> dict[str, Any]:
    """Dice against the cumulative annotation cost on `axis` (e.g. "fg_slices") instead of labeled volumes.

    Arms that pick cheap volumes end at a smaller cost, so a per-run normalised AUBC over its own range would not
    compare: every run of a domain is integrated over the domain's common range [the largest first cost, the
    smallest final cost] (no extrapolation). Runs whose ledgers have no recorded cost are left out.

    Returns:
        {"range": {domain: [low, high]}, "aubc": {domain: {strategy: stats + "per_seed"}},
        "curves": {domain: {strategy: [{"budget": mean cumulative cost at the round, "mean", "std", ...}]}},
        "per_volume": {domain: {strategy: stats of the cost per labeled volume}}}.
    """
    out: dict[str, Any] = {"range": {}, "aubc": {}, "curves": {}, "per_volume": {}}
    for domain in runset.domains:
        points: dict[Path, list[tuple[float, float]]] = {}  # by campaign folder (RunData holds a dict: no hash)
        for run in (r for r in runset.runs if r.domain == domain):
            costs = run.costs(axis)
            if costs is not None:
                pts = [(x, y) for x, y in zip(costs, run.curve(), strict=True) if math.isfinite(y)]
                if len(pts) >= 2:
                    points[run.path] = pts
        if not points:
            continue
        low, high = max(p[0][0] for p in points.values()), min(p[-1][0] for p in points.values())
        if high <= low:
            continue
        out["range"][domain] = [low, high]
        for strategy in runset.strategies:
            runs = [r for r in runset.select(domain, strategy) if r.path in points]
            if not runs:
                continue
            per_seed = {}
            for run in runs:
                x, y = zip(*points[run.path], strict=True)
                try:
                    per_seed[str(run.seed)] = compute_aubc(x, y, min_budget=low, max_budget=high)
                except AssftError:  # e.g. a pick with no foreground: two points at the same cost
                    per_seed[str(run.seed)] = None
            out["aubc"].setdefault(domain, {})[strategy] = {**compute_stats(per_seed.values()), "per_seed": per_seed}
            by_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
            for run in runs:
                for index, point in enumerate(points[run.path]):
                    by_round[index].append(point)
            out["curves"].setdefault(domain, {})[strategy] = [
                {"budget": float(np.mean([x for x, _ in pts])), "fraction": None,
                 **compute_stats(y for _, y in pts)} for _, pts in sorted(by_round.items())]
            out["per_volume"].setdefault(domain, {})[strategy] = compute_stats(
                points[r.path][-1][0] / r.rounds[-1].labeled_total for r in runs if r.rounds[-1].labeled_total)
    return out


def summarize_runs(runset: RunSet, *, early_fraction: float = 0.25) -> dict[str, Any]:
    """Every per-(domain, strategy) number of the report, JSON-ready (no comparison statistics; see `compare_runs`).

    Returns:
        {"domains", "strategies", "runs", "bounds", "curves", "aubc", "final", "gap_closed", "per_class_dice",
        "pseudo_labels", "timings", "early_fraction", "cost_axes"}; "aubc"/"final"/... are {domain: {strategy: ...}};
        "cost_axes" is {axis: `cost_axis_summary`} for the axes some ledger recorded (empty for older ledgers).
    """
    domains, strategies = runset.domains, runset.strategies
    out: dict[str, Any] = {
        "domains": domains, "strategies": strategies, "early_fraction": early_fraction,
        "runs": [{"domain": r.domain, "strategy": r.strategy, "seed": r.seed, "path": str(r.path),
                  "rounds_evaluated": len(r.rounds), "rounds_planned": r.rounds_planned, "complete": r.complete,
                  "has_baseline": bool(r.baseline and r.baseline.get("mean_dice") is not None)}
                 for r in sorted(runset.runs, key=lambda r: (r.domain, r.strategy, r.seed))],
        "bounds": {d: {k: (v or {}).get("mean_dice") for k, v in {"lower": None, "upper": None,
                                                                   **runset.bounds.get(d, {})}.items()}
                   for d in domains},
        "upper_bound": {d: {k: (runset.bounds.get(d, {}).get("upper") or {}).get(k)
                            for k in ("mean_dice_sd", "n_seeds", "steps")} for d in domains},
        "compute": _compute(runset, strategies),
        "curves": {}, "aubc": {}, "final": {}, "gap_closed": {}, "per_class_dice": {}, "first_round": {},
        "pseudo_labels": _pseudo_summary(runset), "timings": _timings(runset, strategies),
        "cost_axes": {axis: summary for axis in COST_AXES
                      if (summary := cost_axis_summary(runset, axis))["aubc"]},
    }
    for domain in domains:
        for strategy in strategies:
            runs = runset.select(domain, strategy)
            if not runs:
                continue
            out["curves"].setdefault(domain, {})[strategy] = _curves(runs)
            per_seed = {str(r.seed): run_aubc(r) for r in runs}
            out["aubc"].setdefault(domain, {})[strategy] = {
                **compute_stats(per_seed.values()), "per_seed": per_seed,
                "incomplete_seeds": [r.seed for r in runs if not r.complete]}
            changes = [first_round_change(r) for r in runs]
            if any(c is not None for c in changes):
                out["first_round"].setdefault(domain, {})[strategy] = compute_stats(changes)
            out["final"].setdefault(domain, {})[strategy] = {
                "budget": compute_stats(float(r.rounds[-1].labeled_total or 0) for r in runs),
                **{key: compute_stats(_final_metric(r, key) for r in runs) for key in FINAL_KEYS}}
            gaps = [_gap(r, runset.bounds.get(domain), early_fraction) for r in runs]
            if any(g[0] is not None for g in gaps):
                out["gap_closed"].setdefault(domain, {})[strategy] = {
                    "final": compute_stats(g[0] for g in gaps), "early": compute_stats(g[1] for g in gaps),
                    "early_budget": compute_stats(g[2] for g in gaps)["mean"]}
            classes = sorted({c for r in runs for c in ((r.final or {}).get("dice") or {})})
            out["per_class_dice"].setdefault(domain, {})[strategy] = {
                c: compute_stats(((r.final or {}).get("dice") or {}).get(c) for r in runs) for c in classes}
    return out
