"""Paired AUBC comparison of arms over (domain, seed) pairs, read from campaign ledgers (any folder `assft report`
reads): per-domain means, sd and wins, the effect per domain, pooled and pooled without `--without` (default
multisite) with its bootstrap CI and Wilcoxon p, Holm over the comparisons within each of those scopes.

    python benchmarks/experiments/paired_arms.py RUNS --reference assft --arms assft-spread [--out effects.json]
    python benchmarks/experiments/paired_arms.py RUNS --pairs assft:fg-random,assft:clasp-pe [--out effects.json]

`--pairs` compares each arm with its own reference, Holm over all the pairs (a family of pre-declared tests);
`--reference`/`--arms` compares every arm with one reference, Holm over the arms. With pool draws as replicates
(run_suite's `replicate: draw`) the seed is the draw, so the pairs are paired by draw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="folders with ledgers (merged; later folders win)")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--arms", default=None, help="comma-separated arms compared with the reference")
    parser.add_argument("--pairs", default=None, help="comma-separated ARM:REFERENCE pairs, one Holm family")
    parser.add_argument("--without", default="multisite",
                        help="comma-separated domains left out of the second pooled line ('' for none)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from assft.reporting.runs import load_runs
    from assft.reporting.summary import run_aubc

    aubc: dict[tuple[str, str, int], float] = {}
    for folder in args.runs:
        for run in load_runs(folder).runs:
            value = run_aubc(run)
            if value is not None and run.complete:
                aubc[(run.domain, run.strategy, run.seed)] = value
    if (args.pairs is None) == (args.reference is None or args.arms is None):
        parser.error("give either --pairs, or --reference with --arms")
    if args.pairs and any(pair.count(":") != 1 or "" in pair.split(":") for pair in args.pairs.split(",")):
        parser.error(f"--pairs {args.pairs!r}: write comma-separated ARM:REFERENCE pairs, e.g. assft:fg-random")
    pairs_asked = ([tuple(pair.split(":")) for pair in args.pairs.split(",")] if args.pairs
                   else [(arm, args.reference) for arm in args.arms.split(",")])
    without = tuple(d for d in args.without.split(",") if d)
    effects = compare_all(aubc, pairs_asked, without)
    if args.pairs:
        result: dict = {"comparisons": [{"arm": arm, "reference": ref, **effect}
                                        for (arm, ref), effect in zip(pairs_asked, effects, strict=True)]}
    else:
        result = {"reference": args.reference, "arms": dict(zip(args.arms.split(","), effects, strict=True))}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def compare_all(aubc: dict[tuple[str, str, int], float], pairs: list[tuple[str, str]],
                without: tuple[str, ...] = ("multisite",)) -> list[dict]:
    """Per pair: {"pooled", "pooled_without" (when it applies), "per_domain"}; Holm across the pairs per scope."""
    from assft.reporting.effects import paired_effects

    scores: dict[str, dict[tuple[str, int], float]] = {}
    for (domain, arm, seed), value in aubc.items():
        scores.setdefault(arm, {})[(domain, seed)] = value
    for arm, reference in pairs:
        if not set(scores.get(arm, {})) & set(scores.get(reference, {})):
            raise SystemExit(f"no (domain, seed) has both {arm!r} and {reference!r}")
    out = []
    for row in paired_effects(scores, list(pairs), without=without):
        a, b = scores[row["arm"]], scores[row["vs"]]
        per_domain = {}
        for domain, effect in row["by_domain"].items():
            keys = sorted(k for k in set(a) & set(b) if k[0] == domain)
            values = [a[k] for k in keys]
            per_domain[domain] = {**effect, "arm": float(np.mean(values)),
                                  "arm_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                                  "reference": float(np.mean([b[k] for k in keys])),
                                  "ties": int(sum(a[k] == b[k] for k in keys))}
        result = {"pooled": row["pooled"], "per_domain": per_domain}
        if "pooled_without" in row:
            result["pooled_without"] = row["pooled_without"]
        out.append(result)
    return out


if __name__ == "__main__":
    main()
