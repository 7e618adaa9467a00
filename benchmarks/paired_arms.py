"""Paired AUBC comparison of arms over (domain, seed) pairs, read from campaign ledgers (any folder `assft report`
reads): per-domain means and wins, the pooled effect with its bootstrap CI and Wilcoxon p, Holm over the arms.

    python benchmarks/paired_arms.py RUNS --reference assft --arms assft-spread [--out effects.json]
    python benchmarks/paired_arms.py RUNS --pairs assft:fg-random,assft:clasp-pe [--out effects.json]

`--pairs` compares each arm with its own reference, Holm over all the pairs (a family of pre-declared tests);
`--reference`/`--arms` compares every arm with one reference, Holm over the arms.
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
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from assft.metrics.stats import holm
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
    effects = [compare(aubc, arm, reference) for arm, reference in pairs_asked]
    for effect, p in zip(effects, holm([e["pooled"]["p_value"] for e in effects]), strict=True):
        effect["pooled"]["p_holm"] = p
    if args.pairs:
        result: dict = {"comparisons": [{"arm": arm, "reference": ref, **effect}
                                        for (arm, ref), effect in zip(pairs_asked, effects, strict=True)]}
    else:
        result = {"reference": args.reference, "arms": dict(zip(args.arms.split(","), effects, strict=True))}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def compare(aubc: dict[tuple[str, str, int], float], arm: str, reference: str) -> dict:
    """The paired effect of `arm` over `reference` on every (domain, seed) both ran: pooled and per domain."""
    from assft.metrics.stats import paired_effect

    pairs = sorted((d, s) for d, a, s in aubc if a == arm and (d, reference, s) in aubc)
    if not pairs:
        raise SystemExit(f"no (domain, seed) has both {arm!r} and {reference!r}")
    a = [aubc[(d, arm, s)] for d, s in pairs]
    b = [aubc[(d, reference, s)] for d, s in pairs]
    per_domain = {}
    for domain in sorted({d for d, _ in pairs}):
        idx = [i for i, (d, _) in enumerate(pairs) if d == domain]
        diff = np.asarray([a[i] - b[i] for i in idx])
        per_domain[domain] = {"n": len(idx), "arm": float(np.mean([a[i] for i in idx])),
                              "arm_sd": float(np.std([a[i] for i in idx], ddof=1)) if len(idx) > 1 else None,
                              "reference": float(np.mean([b[i] for i in idx])),
                              "mean_diff": float(diff.mean()), "wins": int((diff > 0).sum()),
                              "ties": int((diff == 0).sum())}
    return {"pooled": paired_effect(a, b), "per_domain": per_domain}


if __name__ == "__main__":
    main()
