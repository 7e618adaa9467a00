"""The recipe decision table from a recipe-study work folder (validation split): per recipe and domain, the round-1
Dice of each strategy minus the (adapted) start model's Dice (worst over seeds and the mean), the final Dice and the
AUBC (mean over seeds); a recipe passes when no strategy's mean round-1 change is below -0.01 on any domain.

Usage: python benchmarks/experiments/recipe_table.py /tmp/assft_suite/recipe/runs [--json benchmarks/results/recipe/table.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

TOLERANCE = 0.01  # the largest allowed round-1 drop below the adapted start model (mean over seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from assft.reporting import load_runs
    from assft.reporting.summary import first_round_change, run_aubc

    runset = load_runs(args.runs)
    cells: dict = defaultdict(lambda: defaultdict(dict))  # recipe -> domain -> strategy -> lists
    for run in runset.runs:
        if not run.complete or run.baseline is None:
            continue
        strategy, _, recipe = run.strategy.partition("@")
        row = cells[recipe or "default"][run.domain].setdefault(strategy, {"r1": [], "aubc": [], "final": []})
        row["r1"].append(first_round_change(run))
        row["aubc"].append(run_aubc(run))
        row["final"].append(run.rounds[-1].metrics["mean_dice"])
    table = {}
    domains = sorted({d for by_domain in cells.values() for d in by_domain})
    print("| recipe | " + " | ".join(f"{d}: round-1 Δ (worst seed) / AUBC" for d in domains) +
          " | mean AUBC | mean final Dice | passes |")
    print("|---" * (len(domains) + 4) + "|")
    for recipe, by_domain in sorted(cells.items()):
        passes, aubcs, finals, parts = True, [], [], []
        for domain in domains:
            strategies = by_domain.get(domain, {})
            if not strategies:
                parts.append("–")
                passes = False
                continue
            r1 = {s: float(np.mean(v["r1"])) for s, v in strategies.items()}
            worst = {s: float(np.min(v["r1"])) for s, v in strategies.items()}
            aubc = float(np.mean([a for v in strategies.values() for a in v["aubc"]]))
            aubcs.append(aubc)
            finals.append(float(np.mean([f for v in strategies.values() for f in v["final"]])))
            passes &= min(r1.values()) >= -TOLERANCE
            parts.append(", ".join(f"{s} {r1[s]:+.3f} ({worst[s]:+.3f})" for s in sorted(r1)) + f" / {aubc:.3f}")
        n = {d: {s: len(v["r1"]) for s, v in by_domain.get(d, {}).items()} for d in domains}
        table[recipe] = {"cells": {d: {s: {k: v[k] for k in ("r1", "aubc", "final")} for s, v in by_domain.get(d, {}).items()}
                                   for d in domains}, "mean_aubc": float(np.mean(aubcs)) if aubcs else None,
                         "mean_final": float(np.mean(finals)) if finals else None, "passes": passes, "n": n}
        print(f"| {recipe} | " + " | ".join(parts) + f" | {np.mean(aubcs):.4f} | {np.mean(finals):.4f} | "
              f"{'yes' if passes else 'no'} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"tolerance": TOLERANCE, "recipes": table}, indent=2))


if __name__ == "__main__":
    main()
