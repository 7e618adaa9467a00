"""The steps curve's plateau (validation split, pool draws): final Dice per steps-per-round value S, domain and draw,
and the change each doubling of S brings. The plateau is the smallest S whose doubling changes the final Dice (mean
over draws) by less than `--tolerance` (0.005) on every domain; "none" when even the largest doubling changes more.

Usage: python benchmarks/experiments/steps_plateau.py benchmarks/results/steps_v3/ledgers [--json OUT.json]
(arms named STRATEGY@sS, as in benchmarks/configs/steps_v3.yaml)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

TOLERANCE = 0.005


def final_dice(runs_folder: Path) -> dict[str, dict[int, dict[int, float]]]:
    """domain -> S -> draw -> the last round's mean Dice on the validation split (complete runs only)."""
    from assft.reporting import load_runs

    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for run in load_runs(runs_folder).runs:
        if not run.complete or "@s" not in run.strategy:
            continue
        steps = int(run.strategy.rsplit("@s", 1)[1])
        out[run.domain][steps][int(run.seed)] = float(run.rounds[-1].metrics["mean_dice"])
    return out


def plateau(curve: dict[str, dict[int, dict[int, float]]], tolerance: float = TOLERANCE) -> dict:
    """Per domain the mean final Dice per S and each doubling's change (draws present at both S); the plateau S."""
    table: dict = {"tolerance": tolerance, "domains": {}}
    candidates = None
    for domain, by_steps in sorted(curve.items()):
        steps = sorted(by_steps)
        rows = []
        flat = set()
        for s in steps:
            values = list(by_steps[s].values())
            row = {"steps": s, "draws": len(values), "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))
                   if len(values) > 1 else 0.0}
            if 2 * s in by_steps:
                shared = sorted(set(by_steps[s]) & set(by_steps[2 * s]))
                change = float(np.mean([by_steps[2 * s][d] - by_steps[s][d] for d in shared])) if shared else None
                row["doubling_change"] = change
                if change is not None and abs(change) < tolerance:
                    flat.add(s)
            rows.append(row)
        table["domains"][domain] = rows
        candidates = flat if candidates is None else candidates & flat
    table["plateau_steps"] = min(candidates) if candidates else None
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    table = plateau(final_dice(args.runs), args.tolerance)
    print("| domain | S | draws | final Dice (mean ± sd) | change when S doubles |")
    print("|---|---|---|---|---|")
    for domain, rows in table["domains"].items():
        for row in rows:
            change = row.get("doubling_change")
            print(f"| {domain} | {row['steps']} | {row['draws']} | {row['mean']:.3f} ± {row['sd']:.3f} | "
                  f"{'' if change is None else f'{change:+.4f}'} |")
    print(f"\nplateau (every domain's doubling change < {args.tolerance}): {table['plateau_steps'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
