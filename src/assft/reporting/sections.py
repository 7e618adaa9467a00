"""The sections of the report as `Document` blocks, each a table of numbers read from the summary dict (so report.md,
report.html and summary.json agree by construction)."""

from __future__ import annotations

from typing import Any

from assft.reporting.document import Document, fmt, fmt_stats

__all__ = ["build_document"]

_SIGN = {1: "+", 0: "0", -1: "−"}
_TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank", "ttest": "paired t"}


def _overview(doc: Document, summary: dict[str, Any], skipped: list[str]) -> None:
    doc.heading("Runs")
    rows = []
    for domain in summary["domains"]:
        for strategy in summary["strategies"]:
            runs = [r for r in summary["runs"] if r["domain"] == domain and r["strategy"] == strategy]
            if not runs:
                continue
            flags = [f"seed {r['seed']}: {r['rounds_evaluated']}/{r['rounds_planned']} rounds"
                     for r in runs if not r["complete"]]
            rows.append([domain, strategy, ", ".join(str(r["seed"]) for r in runs),
                         str(max(r["rounds_evaluated"] for r in runs)),
                         "yes" if not flags else "INCOMPLETE (" + "; ".join(flags) + ")"])
    doc.table(["domain", "strategy", "seeds", "rounds", "complete"], rows)
    if any(not r["has_baseline"] for r in summary["runs"]):
        doc.paragraph("Runs without a budget-0 (start model) point integrate their AUBC from their first round.")
    for note in skipped:
        doc.paragraph(f"Skipped: {note}")


def _curves(doc: Document, figure: str | None) -> None:
    doc.heading("Dice vs budget")
    doc.paragraph("Mean Dice on the target test set over seeds (line) and the spread over seeds (band), against the "
                  "number of labeled volumes (top axis: % of the pool). Dashed: upper bound (all of the pool "
                  "labeled); dotted: lower bound (start model), when known.")
    if figure:
        doc.image(figure, "Dice vs budget")


def _aubc(doc: Document, summary: dict[str, Any], ranks: dict[str, dict[str, int | None]]) -> None:
    doc.heading("AUBC")
    rows = []
    for domain, by_strategy in summary["aubc"].items():
        order = sorted(by_strategy, key=lambda s: (ranks[domain].get(s) or 10**6, s))
        for strategy in order:
            row = by_strategy[strategy]
            note = ("incomplete: seed " + ", ".join(map(str, row["incomplete_seeds"]))) if row["incomplete_seeds"] \
                else ""
            rows.append([domain, strategy, fmt_stats(row), str(ranks[domain].get(strategy) or "–"), str(row["n"]),
                         note])
    doc.table(["domain", "strategy", "AUBC", "rank", "seeds", "note"], rows,
              caption="Area under the Dice-vs-labeled-volumes curve (trapezoid, divided by the budget range "
                      "[0, final budget], or [first round, final budget] without a budget-0 point), mean ± std "
                      "over seeds; rank 1 = best per domain.")


_COST_NAMES = {"fg_slices": "foreground slices (acquisition axis)", "fg_slices_min": "foreground slices (fewest axis)",
               "structures": "structures", "fg_voxels": "foreground voxels"}


def _cost(doc: Document, summary: dict[str, Any], ranks: dict[str, dict[str, int | None]],
          figure: str | None) -> None:
    from assft.reporting.comparison import rank_strategies

    axes = summary.get("cost_axes") or {}
    if "fg_slices" not in axes:
        return
    doc.heading("Annotation cost: Dice vs annotated foreground slices")
    slices, structures = axes["fg_slices"], axes.get("structures") or {}
    rows = []
    for domain, by_strategy in slices["aubc"].items():
        on_slices = rank_strategies({s: row["mean"] for s, row in by_strategy.items()})
        volumes = summary["aubc"].get(domain, {})
        low, high = slices["range"][domain]
        for strategy in sorted(by_strategy, key=lambda s: (on_slices.get(s) or 10**6, s)):
            per_structure = (structures.get("per_volume") or {}).get(domain, {}).get(strategy)
            rows.append([domain, strategy, fmt_stats(volumes.get(strategy)),
                         str((ranks.get(domain) or {}).get(strategy) or "–"), fmt_stats(by_strategy[strategy]),
                         str(on_slices.get(strategy) or "–"),
                         fmt_stats(slices["per_volume"].get(domain, {}).get(strategy), 1),
                         fmt_stats(per_structure, 1) if per_structure else "–", f"{low:.0f}–{high:.0f}"])
    doc.table(["domain", "strategy", "AUBC (volumes)", "rank", "AUBC (fg slices)", "rank", "fg slices / volume",
               "structures / volume", "slice range"], rows,
              caption="The same runs against what an annotator draws: the cumulative number of slices with "
                      "foreground along the acquisition axis (largest spacing; ties: the last axis) of every "
                      "labeled volume. Each run's AUBC on this axis is integrated over the domain's common range "
                      "(the largest first cost to the smallest final cost, no extrapolation), so arms that picked "
                      "cheap volumes are compared at equal cost. Structures: 26-connected components per class. "
                      "Mean ± std over seeds; rank 1 = best.")
    if figure:
        doc.image(figure, "Dice vs annotated foreground slices")


def _count(value: float | None) -> str:
    """A number of volumes: an integer, or one decimal for a mean over seeds that stopped at different budgets."""
    return fmt(value, 0 if value is None or float(value).is_integer() else 1)


def _final(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading("Final round")
    rows = [[domain, strategy, _count(row["budget"]["mean"]), fmt_stats(row["mean_dice"]),
             fmt_stats(row["mean_hd95"], 2), fmt_stats(row["mean_nsd"])]
            for domain, by_strategy in summary["final"].items() for strategy, row in by_strategy.items()]
    doc.table(["domain", "strategy", "labeled", "Dice", "HD95 (mm)", "NSD"], rows,
              caption="Test metrics after the last evaluated round, mean ± std over seeds.")


FIRST_ROUND_TOLERANCE = 0.01  # the recipe criterion: round 1 may not fall further below the start model


def _first_round(doc: Document, summary: dict[str, Any]) -> None:
    if not summary.get("first_round"):
        return
    doc.heading("First round vs the start model")
    rows = []
    for domain, by_strategy in summary["first_round"].items():
        for strategy, row in by_strategy.items():
            below = row["mean"] is not None and row["mean"] < -FIRST_ROUND_TOLERANCE
            rows.append([domain, strategy, fmt_stats(row), fmt(row["min"]), "**yes**" if below else "no"])
    doc.table(["domain", "strategy", "round-1 Dice − start Dice", "worst seed",
               f"below start by > {FIRST_ROUND_TOLERANCE}"], rows,
              caption="Does the first fine-tuning round make the (adapted) start model worse? Mean ± std over seeds.")


def _gap(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading("Gap closed")
    if not summary["gap_closed"]:
        doc.paragraph("No lower and upper bound (bounds.json, or a campaign's round 0 with --upper-model) with a "
                      "mean Dice: the gap closed is not reported.")
        return
    rows = []
    for domain, by_strategy in summary["gap_closed"].items():
        bounds = summary["bounds"][domain]
        for strategy, row in by_strategy.items():
            rows.append([domain, strategy, fmt(bounds["lower"]), fmt(bounds["upper"]), fmt_stats(row["final"]),
                         fmt(row["early_budget"], 1), fmt_stats(row["early"])])
    pct = round(100 * summary["early_fraction"])
    doc.table(["domain", "strategy", "lower", "upper", "gap closed (final)", f"labeled at {pct} % budget",
               f"gap closed ({pct} % budget)"], rows,
              caption="(Dice − lower) / (upper − lower): 0 = start model, 1 = fully labeled pool; at the final "
                      "round "
                      f"and interpolated at {pct} % of the total budget (– when outside the evaluated budgets).")


def _compute(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading("Compute per arm")
    rows = []
    counts = {tuple(row["steps_per_round"]) for row in summary["compute"].values() if row["recorded"]}
    for strategy, row in summary["compute"].items():
        steps = ", ".join(map(str, row["steps_per_round"])) if row["recorded"] else "not recorded"
        rows.append([strategy, steps, fmt(row["patches_per_round"], 0)])
    doc.table(["arm", "optimizer steps per round", "patches per round"], rows,
              caption="Optimizer steps each round spent (pseudo-labeled steps included), from the ledgers; "
                      "patches count pseudo-labeled patches too (an SSFT step sees a labeled and a pseudo-labeled "
                      "batch).")
    if len(counts) > 1:
        doc.paragraph("**Unequal compute:** the arms above did not all spend the same optimizer steps per round; "
                      "comparisons between arms of unequal compute are marked in the effect tables.")
    upper = summary.get("upper_bound") or {}
    notes = [f"{d}: {u['n_seeds']} seed(s), {u['steps']} steps" for d, u in upper.items() if u.get("steps")]
    if notes:
        doc.paragraph("Upper bound (whole pool labeled, the campaigns' total steps): " + "; ".join(notes) + ".")


def _references(doc: Document, summary: dict[str, Any]) -> None:
    extra = sorted({k for b in summary["bounds"].values() for k in b if k not in ("lower", "upper")})
    if not extra:
        return
    doc.heading("Budget 0: adaptation without labels")
    rows = []
    for domain, bounds in summary["bounds"].items():
        lower, upper = bounds.get("lower"), bounds.get("upper")
        for name in extra:
            value = bounds.get(name)
            gap = None if None in (value, lower, upper) or upper == lower else (value - lower) / (upper - lower)
            rows.append([domain, name, fmt(lower), fmt(value), fmt(upper), fmt(gap, 2)])
    doc.table(["domain", "method", "start model (as is)", "adapted (0 labels)", "upper bound", "gap closed"], rows,
              caption="Test Dice of the start model adapted to the pool without a single label; gap closed = "
                      "(adapted − start) / (upper − start).")


def _effect_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for row in rows:
        mark = "" if row["equal_compute"] else " (unequal compute: " + " vs ".join(
            "/".join(map(str, s)) or "?" for s in row["steps_per_round"]) + " steps)"
        cells = [("pooled", row["pooled"])]
        if row.get("pooled_without"):
            cells.append((f"pooled without {', '.join(row['pooled_without']['excluded'])}", row["pooled_without"]))
        cells += list(row["by_domain"].items())
        for scope, e in cells:
            if e is None:
                continue
            ci = "–" if e["ci_low"] is None else f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]"
            out.append([f"{row['arm']} vs {row['vs']}{mark}", scope, f"{e['mean_diff']:+.4f}", ci,
                        f"{e['wins']}/{e['n']}", fmt(e["p_value"], 3), fmt(e.get("p_holm"), 3)])
    return out


def _effects(doc: Document, summary: dict[str, Any]) -> None:
    effects = summary.get("effects") or {}
    header = ["comparison", "scope", "Δ AUBC", "95 % CI", "wins/n", "p", "p (Holm)"]
    caption = ("Paired per-run AUBC differences (first − second) per domain over seeds and pooled over (domain, "
               "seed) pairs; percentile bootstrap CI; Wilcoxon signed-rank p, Holm-adjusted within each scope of "
               "the table. With 5 seeds a single domain cannot reach p < 0.05 (the smallest two-sided p is 0.0625).")
    for group in effects.get("query_effect") or []:
        doc.heading("Query effect " + ("(with SSFT)" if group["ssft"] else "(labeled-only fine-tuning)"))
        doc.table(header, _effect_rows(group["rows"]),
                  caption=f"Each arm vs `{group['reference']}` with identical fine-tuning. " + caption)
    declared = effects.get("declared") or {}
    if declared.get("rows"):
        doc.heading("Declared comparisons")
        missing = "; ".join(f"{a} vs {b}" for a, b in declared.get("missing") or [])
        doc.table(header, _effect_rows(declared["rows"]),
                  caption="The comparisons declared before the run, one Holm family per scope across them. "
                          + caption + (f" Declared but not run: {missing}." if missing else ""))
    ssft = (effects.get("ssft_effect") or {}).get("rows") or []
    if ssft:
        doc.heading("SSFT effect")
        doc.table(header, _effect_rows(ssft),
                  caption="Each SSFT arm vs the labeled-only arm of the same query and recipe. " + caption)


def _p(value: float | None) -> str:
    return "p=–" if value is None else f"p={value:.3g}"


def _wins(doc: Document, comparison: dict[str, Any], figure: str | None) -> None:
    doc.heading("Pairwise comparison")
    matrix = comparison["win_matrix"]
    if matrix is None:
        doc.paragraph("Only one strategy: nothing to compare.")
    else:
        names = matrix["strategies"]
        rows = []
        for i, name in enumerate(names):
            cells = ["–" if i == j else f"{_SIGN[matrix['matrix'][i][j]]} ({_p(matrix['p_values'][i][j])})"
                     for j in range(len(names))]
            rows.append([name, *cells, str(matrix["wins"][name]), str(matrix["losses"][name])])
        doc.table(["strategy", *names, "wins", "losses"], rows,
                  caption=f"Row vs column on per-run AUBC paired by (domain, seed), "
                          f"{_TEST_NAMES.get(matrix['method'], matrix['method'])} test, "
                          f"α = {matrix['alpha']}, n = {matrix['n_pairs']} pairs: + significantly better, "
                          "− significantly worse, 0 no significant difference.")
        if matrix["note"]:
            doc.paragraph(f"Note: {matrix['note']}")
        if figure:
            doc.image(figure, "win matrix")
    versus = comparison["assft_vs_fg_random"]
    if versus is not None:
        doc.paragraph(f"`{versus['a']}` vs `{versus['b']}` (AUBC, {versus['method']}, n = {versus['n']}): mean "
                      f"difference {fmt(versus['mean_diff'], 4)}, p = {fmt(versus['p_value'], 4)}."
                      + (f" {versus['note']}" if versus["note"] else ""))


def _per_class(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading("Per-class Dice (final round)")
    for domain, by_strategy in summary["per_class_dice"].items():
        classes = list(dict.fromkeys(c for row in by_strategy.values() for c in row))
        if not classes:
            continue
        rows = [[strategy, *(fmt_stats(row.get(c)) for c in classes)] for strategy, row in by_strategy.items()]
        doc.table(["strategy", *classes], rows, caption=f"{domain}: mean ± std over seeds.")


def _pseudo(doc: Document, summary: dict[str, Any], figures: dict[str, str]) -> None:
    if not summary["pseudo_labels"]:
        return
    doc.heading("Pseudo-label diagnostic (Fig. 5)")
    rows = []
    for domain, by_strategy in summary["pseudo_labels"].items():
        for strategy, per_round in by_strategy.items():
            for row in per_round:
                rows.append([domain, strategy, str(row["round"]), fmt(row["selected"]["mean"]),
                             str(row["selected"]["n"]), fmt(row["unselected"]["mean"]), str(row["unselected"]["n"])])
    doc.table(["domain", "strategy", "round", "selected Dice", "n selected", "unselected Dice", "n unselected"], rows,
              caption="True Dice of the pseudo-labels SSFT kept (selected) vs discarded, pooled over seeds; a "
                      "reliable selection keeps the better ones.")
    for name, path in figures.items():
        doc.image(path, f"pseudo-labels {name}")


def _pictures(doc: Document, pictures: dict[str, list[dict[str, str]]]) -> None:
    if not pictures:
        return
    doc.heading("What was picked, and which pseudo-labels were trusted")
    doc.paragraph("Per round: the contact sheet of the picks (each through the region that drove it; the campaign "
                  "folder holds one picture per pick with the image, the prediction and the entropy) and the "
                  "pseudo-label gallery (most confident accepted next to least confident rejected, with the true "
                  "label in simulations). One seed per strategy.")
    for group, items in pictures.items():
        doc.heading(group, level=3)
        for item in items:
            doc.image(item["path"], f"{group}, {item['alt']}")


def _timings(doc: Document, summary: dict[str, Any]) -> None:
    doc.heading("Timings")
    rows = [[strategy, str(row["n_rounds"]), fmt(row["query_s"], 1), fmt(row["finetune_s"], 1),
             fmt(row["evaluate_s"], 1)] for strategy, row in summary["timings"].items()]
    doc.table(["strategy", "rounds", "query (s)", "fine-tune (s)", "evaluate (s)"], rows,
              caption="Mean seconds per round over every domain and seed.")


def build_document(summary: dict[str, Any], comparison: dict[str, Any], figures: dict[str, Any], *,
                   source: str, skipped: list[str]) -> Document:
    """The whole report: runs, curves, AUBC, final metrics, gap closed, comparisons, per-class, Fig. 5, timings."""
    doc = Document("assft report")
    doc.paragraph(f"Runs read from `{source}`: {len(summary['runs'])} campaigns, {len(summary['domains'])} "
                  f"domain(s), {len(summary['strategies'])} strategies. All numbers are also in `summary.json`.")
    _overview(doc, summary, skipped)
    _compute(doc, summary)
    _curves(doc, figures.get("curves"))
    _references(doc, summary)
    _aubc(doc, summary, comparison["ranks"])
    _cost(doc, summary, comparison["ranks"], figures.get("cost_curves"))
    _final(doc, summary)
    _first_round(doc, summary)
    _gap(doc, summary)
    _effects(doc, summary)
    _wins(doc, comparison, figures.get("win_matrix"))
    _per_class(doc, summary)
    _pseudo(doc, summary, figures.get("pseudo_labels", {}))
    _pictures(doc, figures.get("pictures", {}))
    _timings(doc, summary)
    return doc
