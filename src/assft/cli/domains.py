"""`assft domains list|apply`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import console

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_domains_cmd() -> None:
    """List the simulated target domains and what each simulates."""
    from rich.table import Table

    from assft.domains import list_domains

    table = Table("domain", "simulates")
    for name, doc in list_domains().items():
        table.add_row(name, doc)
    console.print(table)


@app.command("apply")
def apply(domain: str = typer.Option(..., "--domain", help="Domain name (see `assft domains list`)."),
          in_dir: Path = typer.Option(..., "--data", help="Source dataset folder (MSD layout)."),
          out_dir: Path = typer.Option(..., "--out", help="Folder for the shifted dataset."),
          seed: int = typer.Option(0, help="Seed; a case's shift depends only on (seed, case id)."),
          severity: float = typer.Option(None, help="0..1 scale of the effect (default: the domain's own).")) -> None:
    """Write a shifted copy of a dataset (labels untouched, provenance in dataset.json)."""
    from assft.cli.common import check_output_dir
    from assft.domains import apply_domain_to_dataset

    check_output_dir(out_dir, inputs={"--data": in_dir})
    out = apply_domain_to_dataset(in_dir, out_dir, domain, seed, severity)
    console.print(f"wrote {domain} domain to {out}")
