"""`assft monailabel app`: write a MONAI Label app folder for a checkpoint (docs/monailabel.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import console, default_of
from assft.query.config import QueryConfig

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add `monailabel` to the root app."""
    root.add_typer(app, name="monailabel", help="Serve assft to annotators in 3D Slicer / OHIF through MONAI Label.")


@app.command("app")
def write_app_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the app (new or empty)."),
    model: Path = typer.Option(..., "--model", help="assft checkpoint (.pt): θ0, the model the app starts from."),
    labels: str = typer.Option(None, "--classes", help="Names of the foreground classes 1..C-1, comma-separated "
                               "(default: the checkpoint's)."),
    strategy: str = typer.Option("assft", "--strategy", help="Default 'next sample' strategy: assft, fg-random or "
                                 "clasp-pe (all three are served)."),
    alpha: float = typer.Option(None, "--alpha", show_default=str(default_of(QueryConfig, "alpha")),
                                help="Q = alpha * DKD + (1 - alpha) * ASD."),
    rounds: int = typer.Option(10, "--rounds", help="Rounds planned in the app's ledger (more may run)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the query tie-breaks and of fine-tuning."),
    test: Path = typer.Option(None, "--test", help="Labeled target set to monitor: each trained model is evaluated "
                              "on it (Dice in the ledger; what `assft report` plots)."),
) -> None:
    """Write a ready MONAI Label app: main.py, assft_app.yaml, model/start.pt and start_server.sh (binds 127.0.0.1)."""
    from assft.cli.common import check_output_dir
    from assft.integrations.monailabel.generator import write_app

    check_output_dir(out, inputs={"--model": model, "--test": test})
    names = [n.strip() for n in labels.split(",")] if labels else None
    if names is not None and not all(names):
        from assft.errors import ConfigError

        raise ConfigError(f"--classes has an empty name: {labels!r}.", fix="e.g. --classes anterior,posterior")
    folder = write_app(out, model, strategy=strategy, alpha=alpha, labels=names, rounds=rounds, seed=seed, test=test)
    console.print(f"MONAI Label app written to [bold]{folder}[/]. Serve it on this machine with:\n"
                  f"  {folder / 'start_server.sh'} STUDIES_FOLDER [PORT]\n"
                  "then connect 3D Slicer's MONAI Label module to http://127.0.0.1:8000 (docs/monailabel.md).")
