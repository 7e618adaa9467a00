"""The steps curve's plateau (validation split, pool draws): final Dice per steps-per-round value S, domain and draw,
and the change each doubling of S brings. The plateau is the smallest S from which every further doubling tried
changes the final Dice (mean over draws) by less than `--tolerance` (0.005) on every domain; "none" when the last
doubling still changes more. (Every further doubling, not only the next: a single flat step followed by a rise is
noise, not a plateau.)

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
        changes: dict[int, float | None] = {}
        for s in steps:
            values = list(by_steps[s].values())
            row = {"steps": s, "draws": len(values), "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))
                   if len(values) > 1 else 0.0}
            if 2 * s in by_steps:
                shared = sorted(set(by_steps[s]) & set(by_steps[2 * s]))
                change = float(np.mean([by_steps[2 * s][d] - by_steps[s][d] for d in shared])) if shared else None
                row["doubling_change"] = change
                changes[s] = change
            rows.append(row)
        doubled = [s for s in steps if s in changes]
        flat = {s for s in doubled if all(changes[t] is not None and abs(changes[t]) < tolerance
                                          for t in doubled if t >= s)}
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
    print(f"\nplateau (from it on, every doubling changes < {args.tolerance} on every domain): "
          f"{table['plateau_steps'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
