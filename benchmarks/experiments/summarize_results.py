"""Markdown tables for the README and issue notes from a suite report's summary.json.

Prints: AUBC per strategy x domain (mean ± sd over seeds, rank per domain, mean rank), the fraction of the
lower-to-upper-bound gap closed at the last budget point and at the early one, and paired Wilcoxon tests of chosen
strategies against a reference over every (domain, seed) pair, plus any extra pairs (--pairs a:b, e.g. the full
method against the reference given the same SSFT, to split a gain into its query and fine-tuning parts). Also writes the numbers to JSON (--json).

Usage: python benchmarks/experiments/summarize_results.py benchmarks/results/full_v3/summary.json [--reference fg-random]
       [--against assft,assft+ssft] [--pairs assft+ssft:fg-random+ssft,assft+ssft:assft]
       [--json benchmarks/results/full_v3/tables.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assft.metrics.stats import paired_test


def _fmt(row: dict | None, digits: int = 3) -> str:
    if not row or row.get("mean") is None:
        return "–"
    return f"{row['mean']:.{digits}f} ± {row['std'] or 0:.{digits}f}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def paired(summary: dict, a: str, b: str) -> dict:
    """Wilcoxon of per-seed AUBC of `a` vs `b` over every (domain, seed) both have."""
    xs, ys = [], []
    for domain, rows in summary["aubc"].items():
        if a in rows and b in rows:
            for seed, value in rows[a]["per_seed"].items():
                if seed in rows[b]["per_seed"]:
                    xs.append(value)
                    ys.append(rows[b]["per_seed"][seed])
    if len(xs) < 2:
        return {"n": len(xs), "p_value": None, "mean_diff": None, "wins": None}
    test = paired_test(xs, ys, "wilcoxon")
    return {"n": len(xs), "p_value": test["p_value"], "mean_diff": test["mean_diff"],
            "wins": int(np.sum(np.asarray(xs) > np.asarray(ys)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", type=Path)
    parser.add_argument("--reference", default="fg-random")
    parser.add_argument("--against", default="assft,assft+ssft")
    parser.add_argument("--pairs", default="", help="Extra paired tests, comma-separated a:b.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    summary = json.loads(args.summary.read_text())
    domains, strategies = summary["domains"], summary["strategies"]
    ranks = summary["ranks"]
    mean_rank = {s: float(np.mean([ranks[d][s] for d in domains if ranks[d].get(s) is not None] or [np.nan]))
                 for s in strategies}
    order = sorted(strategies, key=lambda s: (np.nan_to_num(mean_rank[s], nan=99), s))

    print("| strategy | " + " | ".join(domains) + " | mean rank |")
    print("|---" * (len(domains) + 2) + "|")
    for s in order:
        cells = [f"{_fmt(summary['aubc'][d].get(s))} ({ranks[d].get(s)})" for d in domains]
        print(f"| {s} | " + " | ".join(cells) + f" | {mean_rank[s]:.1f} |")
    def bound(domain: str, which: str) -> str:
        value = (summary["bounds"].get(domain) or {}).get(which)
        return "–" if value is None else f"{value:.3f}"

    print("| *bounds (lower / upper Dice)* | " + " | ".join(f"{bound(d, 'lower')} / {bound(d, 'upper')}"
                                                             for d in domains) + " | |")

    print("\nGap closed, (Dice - lower) / (upper - lower): final point / early point")
    print("| strategy | " + " | ".join(domains) + " |")
    print("|---" * (len(domains) + 1) + "|")
    for s in order:
        cells = []
        for d in domains:
            gap = summary["gap_closed"].get(d, {}).get(s) or {}
            cells.append(f"{_fmt(gap.get('final'), 2)} / {_fmt(gap.get('early'), 2)}")
        print(f"| {s} | " + " | ".join(cells) + " |")

    tests = {}
    print(f"\nPaired Wilcoxon on per-run AUBC against {args.reference}, over (domain, seed) pairs")
    print("| strategy | n | mean AUBC difference | wins | p |")
    print("|---|---|---|---|---|")
    for s in [x for x in args.against.split(",") if x in strategies] + [x for x in order if x not in args.against]:
        if s == args.reference:
            continue
        t = paired(summary, s, args.reference)
        tests[s] = t
        if t["p_value"] is not None:
            print(f"| {s} | {t['n']} | {t['mean_diff']:+.4f} | {t['wins']}/{t['n']} | {_p(t['p_value'])} |")
    extra = {}
    pairs = [tuple(p.split(":", 1)) for p in args.pairs.split(",") if ":" in p]
    pairs = [(a, b) for a, b in pairs if a in strategies and b in strategies]
    if pairs:
        print("\nOther paired Wilcoxon tests (per-run AUBC, over (domain, seed) pairs)")
        print("| a vs b | n | mean AUBC difference | wins of a | p |")
        print("|---|---|---|---|---|")
        for a, b in pairs:
            t = extra[f"{a} vs {b}"] = paired(summary, a, b)
            if t["p_value"] is not None:
                print(f"| {a} vs {b} | {t['n']} | {t['mean_diff']:+.4f} | {t['wins']}/{t['n']} | {_p(t['p_value'])} |")
    print_effects(summary)
    if args.json:
        args.json.write_text(json.dumps({"mean_rank": mean_rank, "tests_vs_" + args.reference: tests,
                                         "other_tests": extra}, indent=2))


def _effect_cell(e: dict | None) -> str:
    if not e:
        return "–"
    p = "–" if e.get("p_holm") is None else _p(e["p_holm"])
    return f"{e['mean_diff']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}] {e['wins']}/{e['n']} p={p}"


def print_effects(summary: dict) -> None:
    """The report's equal-compute effect tables, wide: one row per comparison, a column per domain and pooled."""
    effects = summary.get("effects") or {}
    domains = summary["domains"]
    groups = [(("Query effect, " + ("with SSFT" if g["ssft"] else "labeled-only fine-tuning")
                + f", vs {g['reference']}"), g["rows"]) for g in effects.get("query_effect") or []]
    groups.append(("SSFT effect (vs the labeled-only arm of the same query)",
                   (effects.get("ssft_effect") or {}).get("rows") or []))
    for title, rows in groups:
        if not rows:
            continue
        print(f"\n{title}: mean AUBC difference [95 % bootstrap CI] wins/n p (Wilcoxon, Holm within the column)")
        print("| arm | pooled | " + " | ".join(domains) + " | steps/round |")
        print("|---" * (len(domains) + 3) + "|")
        rows = sorted(rows, key=lambda r: -(r["pooled"] or {}).get("mean_diff", -9))
        for row in rows:
            mark = "" if row["equal_compute"] else " (unequal compute)"
            steps = " vs ".join("/".join(map(str, s)) or "?" for s in row["steps_per_round"])
            print(f"| {row['arm']}{mark} | {_effect_cell(row['pooled'])} | "
                  + " | ".join(_effect_cell(row["by_domain"].get(d)) for d in domains) + f" | {steps} |")


if __name__ == "__main__":
    main()
