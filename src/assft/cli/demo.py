"""`assft demo`: the end-to-end example on an embedded default (generated phantoms) or on real data."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from assft.cli.common import console
from assft.utils.progress import silenced


def register(app: typer.Typer) -> None:
    """Add the command to the root app."""
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("assft_demo"), "--out", help="Folder for everything the demo writes."),
    data: Path = typer.Option(None, "--data", help="Real labeled dataset (e.g. the MSD hippocampus) instead of phantoms."),
    domain: str = typer.Option("bias", "--domain", help="Simulated target domain for --data."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines (only the final summary)."),
) -> None:
    """Source model -> shifted target pool -> 3-round campaigns (assft, random, fg-random) -> report.

    Progress goes to stderr: rich on a terminal, one timestamped line per step otherwise (at least every 30 s).
    """
    from assft.demo import run_demo
    from assft.cli.common import check_output_dir

    from assft.utils.paths import check_generated_folder, mark_generated_folder

    check_output_dir(out, inputs={"--data": data})
    check_generated_folder(out, "demo")
    mark_generated_folder(out, "demo")
    with silenced() if quiet else nullcontext():
        summary = run_demo(out, data=data, seed=seed, domain=domain)
    console.print(f"[bold green]done[/] in {summary['seconds']:.0f} s; open {summary['report']}")
