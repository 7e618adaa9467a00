"""`write_report`: read every campaign under a folder, compute the tables, draw the figures and write report.md,
report.html (self-contained; PNGs beside it) and summary.json (every number of the tables)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assft.errors import ConfigError
from assft.reporting.comparison import compare_runs
from assft.reporting.runs import RunSet, load_runs
from assft.reporting.sections import build_document
from assft.reporting.summary import pseudo_label_rows, summarize_runs
from assft.utils.atomic import atomic_write_json, atomic_write_text

__all__ = ["REPORT_FORMAT", "ReportResult", "build_report", "write_report"]

REPORT_FORMAT = "assft-report"
REPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ReportResult:
    """Where the report went, and the numbers in it."""

    out_dir: Path
    markdown: Path
    html: Path
    summary_json: Path
    figures: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _finite(obj: Any) -> Any:
    """A JSON-safe copy: NaN/inf become None (strict JSON), tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def build_report(runset: RunSet, *, alpha: float = 0.05, method: Literal["wilcoxon", "ttest"] = "wilcoxon",
                 early_fraction: float = 0.25, comparisons: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Every number of the report as one JSON-ready dict: `summarize_runs` plus "ranks", "win_matrix" and
    "assft_vs_fg_random" from `compare_runs`, and the effects (with `comparisons`, [(arm, reference)] declared
    beforehand, also their own Holm family under effects["declared"]) (NaN/inf as None)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha!r}.", fix="use e.g. --alpha 0.05")
    if method not in ("wilcoxon", "ttest"):
        raise ConfigError(f"unknown paired test {method!r}; expected 'wilcoxon' or 'ttest'.")
    if not 0 < early_fraction <= 1:
        raise ConfigError(f"early_fraction must be in (0, 1]; got {early_fraction!r}.",
                          fix="pass the fraction of the total budget at which to read the gap closed, e.g. 0.25")
    from assft.reporting.effects import compute_effects, declared_effects

    summary = summarize_runs(runset, early_fraction=early_fraction)
    comparison = compare_runs(runset, summary, alpha=alpha, method=method)
    effects = compute_effects(runset)
    if comparisons:
        effects["declared"] = declared_effects(runset, [(str(a), str(b)) for a, b in comparisons])
    return _finite({"format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION, "source": str(runset.root),
                    "skipped": list(runset.skipped), **summary, **comparison, "effects": effects})


def write_report(runs: str | Path, out: str | Path, *, alpha: float = 0.05,
                 method: Literal["wilcoxon", "ttest"] = "wilcoxon", early_fraction: float = 0.25,
                 spread: Literal["minmax", "std"] = "minmax",
                 comparisons: list[tuple[str, str]] | None = None) -> ReportResult:
    """Write report.md, report.html, summary.json and the PNG figures of every campaign under `runs` into `out`.

    Args:
        runs: a simulation folder (RUNS/domain/strategy/seedS/ledger.json), a campaign folder, or any folder tree.
        out: the output folder (created).
        alpha: significance level of the win matrix.
        method: paired test, "wilcoxon" or "ttest".
        early_fraction: fraction of the total budget at which the gap closed is also read (interpolated).
        spread: band of the budget curves, "minmax" over seeds or "std" (mean ± 1 std).
        comparisons: pre-declared (arm, reference) pairs, reported as their own Holm family.

    Returns:
        A ReportResult with the paths and the summary dict (the content of summary.json).

    Raises:
        DataError: no ledger.json under `runs`, or none with an evaluated round (see `load_runs`).
        ConfigError: invalid alpha, method, early_fraction or spread.
    """
    from assft.reporting.plots import plot_budget_curves, plot_pseudo_label_rounds, plot_win_matrix

    if spread not in ("minmax", "std"):
        raise ConfigError(f"unknown spread {spread!r}; expected 'minmax' or 'std'.")
    runset = load_runs(runs)
    summary = build_report(runset, alpha=alpha, method=method, early_fraction=early_fraction,
                           comparisons=comparisons)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    figures: dict[str, Any] = {}
    written: list[Path] = []
    pools = {d: next((r.pool_size for r in runset.runs if r.domain == d and r.pool_size), None)
             for d in runset.domains}
    written.append(plot_budget_curves(summary["curves"], summary["bounds"], pools, out / "dice_vs_budget.png",
                                      spread=spread))
    figures["curves"] = "dice_vs_budget.png"
    slices = (summary.get("cost_axes") or {}).get("fg_slices")
    if slices and slices["curves"]:
        written.append(plot_budget_curves(slices["curves"], summary["bounds"], {}, out / "dice_vs_fg_slices.png",
                                          spread=spread, x_label="annotated foreground slices"))
        figures["cost_curves"] = "dice_vs_fg_slices.png"
    if summary["win_matrix"] is not None:
        written.append(plot_win_matrix(summary["win_matrix"], out / "win_matrix.png"))
        figures["win_matrix"] = "win_matrix.png"
    pseudo_figures: dict[str, str] = {}
    for (domain, strategy), by_round in pseudo_label_rows(runset).items():
        name = f"pseudo_labels_{_slug(domain)}_{_slug(strategy)}.png"
        path = plot_pseudo_label_rounds(by_round, out / name, title=f"Pseudo-label quality: {strategy} on {domain}")
        if path is not None:
            written.append(path)
            pseudo_figures[f"{domain} / {strategy}"] = name
    figures["pseudo_labels"] = pseudo_figures
    figures["pictures"], copied = collect_pictures(runset, out)
    written += copied
    summary["figures"] = figures

    doc = build_document(summary, summary, figures, source=str(runset.root), skipped=runset.skipped)
    markdown = atomic_write_text(out / "report.md", doc.to_markdown())
    html_path = atomic_write_text(out / "report.html", doc.to_html())
    summary_json = atomic_write_json(out / "summary.json", summary)
    return ReportResult(out_dir=out, markdown=markdown, html=html_path, summary_json=summary_json, figures=written,
                        summary=summary)


PICTURES_DIR = "pictures"  # beside the report: copies of the campaigns' query figures and pseudo-label galleries
MAX_PICTURE_RUNS = 12  # (domain, strategy) pairs shown; one seed each (the lowest), every round


def collect_pictures(runset: RunSet, out: Path) -> tuple[dict[str, list[dict[str, str]]], list[Path]]:
    """Copy each shown run's contact sheets and pseudo-label galleries beside the report (relative links keep the
    report folder self-contained and openable offline) -> ({"domain / strategy (seed S)": [{path, alt}]}, files)."""
    import shutil

    from assft.campaign.layout import round_dir
    from assft.finetune.gallery import GALLERY_NAME
    from assft.query.result import FIGURES_DIR

    shown: dict[str, list[dict[str, str]]] = {}
    copied: list[Path] = []
    first = {}
    for run in sorted(runset.runs, key=lambda r: (r.domain, r.strategy, r.seed)):
        first.setdefault((run.domain, run.strategy), run)
    for (domain, strategy), run in list(first.items())[:MAX_PICTURE_RUNS]:
        items = []
        for record in run.rounds:
            folder = round_dir(run.path, record.round)
            for source, what in ((folder / "query" / FIGURES_DIR / "contact_sheet.png", "picks"),
                                 (folder / "finetune" / GALLERY_NAME, "pseudo-labels")):
                if not source.is_file():
                    continue
                name = f"{_slug(domain)}_{_slug(strategy)}_seed{run.seed}_r{record.round:03d}_{_slug(what)}.png"
                target = out / PICTURES_DIR / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                copied.append(target)
                items.append({"path": f"{PICTURES_DIR}/{name}", "alt": f"round {record.round}: {what}"})
        if items:
            shown[f"{domain} / {strategy} (seed {run.seed})"] = items
    return shown, copied
