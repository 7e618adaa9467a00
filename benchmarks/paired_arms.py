"""Paired AUBC comparison of arms over (domain, seed) pairs, read from campaign ledgers (any folder `assft report`
reads): per-domain means and wins, the pooled effect with its bootstrap CI and Wilcoxon p, Holm over the arms.

    python benchmarks/paired_arms.py RUNS --reference assft --arms assft-spread [--out effects.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="folders with ledgers (merged; later folders win)")
    parser.add_argument("--reference", required=True)
    parser.add_argument("--arms", required=True, help="comma-separated arms compared with the reference")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from assft.metrics.stats import holm, paired_effect
    from assft.reporting.runs import load_runs
    from assft.reporting.summary import run_aubc

    aubc: dict[tuple[str, str, int], float] = {}
    for folder in args.runs:
        for run in load_runs(folder).runs:
            value = run_aubc(run)
            if value is not None and run.complete:
                aubc[(run.domain, run.strategy, run.seed)] = value
    arms = args.arms.split(",")
    result: dict = {"reference": args.reference, "arms": {}}
    for arm in arms:
        pairs = sorted((d, s) for d, a, s in aubc if a == arm and (d, args.reference, s) in aubc)
        a = [aubc[(d, arm, s)] for d, s in pairs]
        b = [aubc[(d, args.reference, s)] for d, s in pairs]
        per_domain = {}
        for domain in sorted({d for d, _ in pairs}):
            idx = [i for i, (d, _) in enumerate(pairs) if d == domain]
            diff = np.asarray([a[i] - b[i] for i in idx])
            per_domain[domain] = {"n": len(idx), "arm": float(np.mean([a[i] for i in idx])),
                                  "arm_sd": float(np.std([a[i] for i in idx], ddof=1)) if len(idx) > 1 else None,
                                  "reference": float(np.mean([b[i] for i in idx])),
                                  "mean_diff": float(diff.mean()), "wins": int((diff > 0).sum()),
                                  "ties": int((diff == 0).sum())}
        result["arms"][arm] = {"pooled": paired_effect(a, b), "per_domain": per_domain}
    adjusted = holm([result["arms"][arm]["pooled"]["p_value"] for arm in arms])
    for arm, p in zip(arms, adjusted, strict=True):
        result["arms"][arm]["pooled"]["p_holm"] = p
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
