"""The query decision of `query_val_v3` (validation split, pool draws as the unit), by the rule its preset fixed
before the run: a candidate replaces the default if, over every (domain, draw) pair, it beats `random` (mean paired
AUBC difference > 0, one-sided exact Wilcoxon p < 0.05 after Holm over the candidates) and its mean AUBC is not
below the default's by more than 0.005; the better of several such candidates wins.

Usage: python benchmarks/experiments/query_choice.py WORK/query_val_v3/draws [--json OUT.json]
       [--default assft] [--baseline random] [--candidates assft-strata,assft-power1]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

MARGIN = 0.005  # the largest mean AUBC a candidate may lose against the default


def aubc_table(runs_folder: Path) -> dict[str, dict[tuple[str, int], float]]:
    """arm -> (domain, draw) -> AUBC of every complete campaign under `runs_folder`."""
    from assft.reporting import load_runs
    from assft.reporting.summary import run_aubc

    table: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for run in load_runs(runs_folder).runs:
        if run.complete:
            table[run.strategy][(run.domain, int(run.seed))] = float(run_aubc(run))
    return table


def paired(table: dict, arm: str, reference: str) -> dict:
    """Mean paired difference, wins/n and the exact one-sided Wilcoxon p (arm > reference) over shared pairs."""
    from scipy.stats import wilcoxon

    keys = sorted(set(table[arm]) & set(table[reference]))
    diffs = np.asarray([table[arm][k] - table[reference][k] for k in keys])
    nonzero = diffs[diffs != 0]
    p = float(wilcoxon(nonzero, alternative="greater", method="exact").pvalue) if len(nonzero) else 1.0
    per_domain = defaultdict(list)
    for k, d in zip(keys, diffs, strict=True):
        per_domain[k[0]].append(float(d))
    return {"arm": arm, "reference": reference, "n": len(keys), "mean_diff": float(diffs.mean()),
            "wins": int((diffs > 0).sum()), "p_one_sided": p,
            "per_domain": {d: float(np.mean(v)) for d, v in sorted(per_domain.items())}}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values in the input order."""
    order = np.argsort(pvalues)
    adjusted = np.empty(len(pvalues))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted.tolist()


def decide(table: dict, default: str, baseline: str, candidates: list[str]) -> dict:
    """The rule of the module docstring, with every number it used."""
    versus_baseline = [paired(table, c, baseline) for c in candidates]
    for row, adjusted in zip(versus_baseline, holm([r["p_one_sided"] for r in versus_baseline]), strict=True):
        row["p_holm"] = adjusted
    versus_default = [paired(table, c, default) for c in candidates]
    default_vs_baseline = paired(table, default, baseline)
    passing = [c for c, b, d in zip(candidates, versus_baseline, versus_default, strict=True)
               if b["mean_diff"] > 0 and b["p_holm"] < 0.05 and d["mean_diff"] >= -MARGIN]
    means = {arm: float(np.mean(list(values.values()))) for arm, values in table.items()}
    winner = max(passing, key=lambda c: means[c]) if passing else None
    return {"mean_aubc": means, "versus_baseline": versus_baseline, "versus_default": versus_default,
            "default_vs_baseline": default_vs_baseline, "passing": passing, "new_default": winner}


def print_arm_table(table: dict, means: dict[str, float], order: list[str], *, show_n: bool = False) -> None:
    """A markdown table: AUBC mean ± sd per arm (rows in `order`) and domain, and the arm's mean over pairs."""
    domains = sorted({k[0] for values in table.values() for k in values})
    print("| arm | " + " | ".join(domains) + " | mean |")
    print("|---|" + "---|" * (len(domains) + 1))
    for arm in order:
        cells = []
        for domain in domains:
            values = [v for (d, _), v in table[arm].items() if d == domain]
            cell = f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"
            cells.append(cell + (f" (n={len(values)})" if show_n else ""))
        print(f"| `{arm}` | " + " | ".join(cells) + f" | {means[arm]:.3f} |")


def format_paired(row: dict) -> str:
    """One line for a `paired` result (with its Holm p when it has one)."""
    holm_text = f", Holm p = {row['p_holm']:.3f}" if "p_holm" in row else ""
    return (f"{row['arm']} vs {row['reference']}: {row['mean_diff']:+.4f}, {row['wins']}/{row['n']}, one-sided "
            f"p = {row['p_one_sided']:.3f}{holm_text}; per domain "
            + ", ".join(f"{d} {v:+.4f}" for d, v in row["per_domain"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--default", default="assft")
    parser.add_argument("--baseline", default="random")
    parser.add_argument("--candidates", default="assft-strata,assft-power1")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    table = aubc_table(args.runs)
    result = decide(table, args.default, args.baseline, args.candidates.split(","))
    print_arm_table(table, result["mean_aubc"], sorted(table), show_n=True)
    print()
    for row in result["versus_baseline"] + result["versus_default"] + [result["default_vs_baseline"]]:
        print(format_paired(row))
    print(f"\nnew default: {result['new_default'] or 'none (the default stays)'}")
    if args.json:
        args.json.write_text(json.dumps({"rule_margin": MARGIN, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
