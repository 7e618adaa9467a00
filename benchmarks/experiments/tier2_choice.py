"""The decisions of `tier2_val` (validation split, pool draws as the unit), by the rules its preset fixed before the
run: the KD source is the source-free candidate with the highest mean AUBC over the (domain, draw) pairs, and it is
the tier's query only if its mean paired difference against `random` is > 0 (else the better of `random` and
`fg-random` is); TENT replaces no adaptation in round 0 if its budget-0 Dice is higher in at least 5 of 6 pairs (5/6
of the pairs in general) and by more than 0.005 in mean. Also reported: each candidate against `random` (exact
one-sided Wilcoxon, Holm) and against the fingerprint reference (what the missing source images cost).

Usage: python benchmarks/experiments/tier2_choice.py WORK/tier2_val/draws [--json OUT.json]
       [--candidates assft-intensity,assft-consistency,assft-pool,assft-intensity-q] [--reference assft-fingerprint]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("query_choice", Path(__file__).with_name("query_choice.py"))
query_choice = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(query_choice)  # type: ignore[union-attr]

ROUND0_MARGIN = 0.005  # TENT must beat no adaptation by more than this in mean budget-0 Dice
ROUND0_SHARE = 5 / 6  # ... and in at least this share of the (domain, draw) pairs


def choose_kd_source(table: dict, candidates: list[str], baseline: str = "random",
                     fallbacks: tuple[str, ...] = ("random", "fg-random"), reference: str | None = None) -> dict:
    """The KD rule of the module docstring, with every number it used."""
    means = {arm: float(np.mean(list(values.values()))) for arm, values in table.items()}
    best = max(candidates, key=lambda c: means[c])
    versus_baseline = [query_choice.paired(table, c, baseline) for c in candidates]
    for row, adjusted in zip(versus_baseline, query_choice.holm([r["p_one_sided"] for r in versus_baseline]),
                             strict=True):
        row["p_holm"] = adjusted
    versus_reference = [query_choice.paired(table, c, reference) for c in candidates] if reference else []
    beats = next(r for r in versus_baseline if r["arm"] == best)["mean_diff"] > 0
    query = best if beats else max((f for f in fallbacks if f in table), key=lambda f: means[f])
    return {"mean_aubc": means, "best_candidate": best, "versus_baseline": versus_baseline,
            "versus_reference": versus_reference, "query": query}


def choose_round0(dice: dict[tuple[str, int], dict[str, float]], candidate: str = "tent",
                  current: str = "auto") -> dict:
    """The round-0 rule: `candidate` replaces `current` if its budget-0 Dice is higher in >= ROUND0_SHARE of the
    pairs and by > ROUND0_MARGIN in mean."""
    diffs = np.array([d[candidate] - d[current] for d in dice.values()])
    wins = int((diffs > 0).sum())
    adopt = bool(wins >= ROUND0_SHARE * len(diffs) and diffs.mean() > ROUND0_MARGIN)
    return {"n": len(diffs), "mean_diff": float(diffs.mean()), "wins": wins,
            "mean": {current: float(np.mean([d[current] for d in dice.values()])),
                     candidate: float(np.mean([d[candidate] for d in dice.values()]))},
            "round0": candidate if adopt else current}


def budget0_dice(runs: Path) -> dict[tuple[str, int], dict[str, float]]:
    """(domain, draw) -> {reference adaptation: budget-0 Dice} from every draw's bounds.json."""
    out = {}
    for bounds in sorted(runs.glob("draw*/*/bounds.json")):
        draw, domain = int(bounds.parent.parent.name.removeprefix("draw")), bounds.parent.name
        references = json.loads(bounds.read_text())["references"]
        out[(domain, draw)] = {name: float(r["mean_dice"]) for name, r in references.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--candidates", default="assft-intensity,assft-consistency,assft-pool,assft-intensity-q")
    parser.add_argument("--reference", default="assft-fingerprint")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    table = query_choice.aubc_table(args.runs)
    kd = choose_kd_source(table, args.candidates.split(","), reference=args.reference)
    round0 = choose_round0(budget0_dice(args.runs))
    query_choice.print_arm_table(table, kd["mean_aubc"], sorted(table, key=lambda a: -kd["mean_aubc"][a]))
    print()
    for row in kd["versus_baseline"] + kd["versus_reference"]:
        print(query_choice.format_paired(row))
    print(f"\nbest source-free candidate: {kd['best_candidate']}; the tier's query: {kd['query']}")
    print(f"round 0: no adaptation {round0['mean']['auto']:.3f}, TENT {round0['mean']['tent']:.3f} (TENT - none "
          f"{round0['mean_diff']:+.4f}, {round0['wins']}/{round0['n']}) -> {round0['round0']}")
    if args.json:
        args.json.write_text(json.dumps({"kd": kd, "round0": round0}, indent=2) + "\n")


if __name__ == "__main__":
    main()
