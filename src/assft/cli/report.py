"""`assft report RUNS --out DIR`: tables, figures and summary.json over every campaign under a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import console


def register(root: typer.Typer) -> None:
    """Add `report` to the root app."""
    root.command("report")(report)


def report(
    runs: Path = typer.Argument(..., exists=True, file_okay=False, help="Simulation folder (RUNS/domain/strategy/"
                                "seedS/ledger.json), a campaign folder, or any folder tree with ledger.json files."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: RUNS/report; a folder of its own, which "
                             "may lie inside RUNS but never be RUNS or hold it)."),
    alpha: float = typer.Option(0.05, "--significance", help="Significance level of the pairwise win matrix."),
    test: str = typer.Option("wilcoxon", "--stat-test", help="Paired test: wilcoxon or ttest."),
    early: float = typer.Option(0.25, "--early", help="Fraction of the total budget at which the gap closed is "
                                "also read."),
    spread: str = typer.Option("minmax", "--spread", help="Band of the budget curves: minmax or std over seeds."),
) -> None:
    """Write report.md, report.html (PNGs beside it) and summary.json: Dice vs budget, AUBC, final Dice/HD95, gap
    closed, win matrix, per-class Dice, the pseudo-label diagnostic and timings."""
    from rich.table import Table

    from assft.reporting.report import write_report

    from assft.cli.common import check_output_dir

    from assft.utils.paths import check_generated_folder, check_output_guard, mark_generated_folder

    out = out if out is not None else runs / "report"
    check_output_guard(out, {"RUNS": runs}, inside_ok=True)
    out = check_generated_folder(check_output_dir(out), "report", signatures=("report.md", "summary.json"))
    result = write_report(runs, out, alpha=alpha, method=test,  # type: ignore[arg-type]
                          early_fraction=early, spread=spread)  # type: ignore[arg-type]
    mark_generated_folder(out, "report")  # after success: a failed report leaves no folder behind
    summary = result.summary
    table = Table("domain", "strategy", "AUBC", "rank", "final Dice", title="AUBC (mean over seeds)")
    for domain, by_strategy in summary["aubc"].items():
        for strategy, row in by_strategy.items():
            final = summary["final"][domain][strategy]["mean_dice"]["mean"]
            table.add_row(domain, strategy, "–" if row["mean"] is None else f"{row['mean']:.3f}",
                          str(summary["ranks"][domain].get(strategy) or "–"),
                          "–" if final is None else f"{final:.3f}")
    console.print(table)
    incomplete = [r for r in summary["runs"] if not r["complete"]]
    if incomplete:
        console.print(f"[yellow]{len(incomplete)} incomplete campaign(s) included up to their last evaluated round "
                      "(flagged in the report).[/]")
    console.print(f"report: [bold]{result.markdown}[/] and [bold]{result.html}[/] "
                  f"({len(result.figures)} figures); numbers: {result.summary_json}")
