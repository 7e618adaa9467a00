"""`assft adapt`: budget-0 test-time adaptation of a checkpoint on unlabeled target volumes (AdaBN, TENT)."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.adapt.config import AdaptConfig
from assft.cli.common import check_output_file, console, parse_triple

_DEFAULT = {name: field.default for name, field in AdaptConfig.model_fields.items()}  # the one place defaults live


def register(app: typer.Typer) -> None:
    """Add the command to the root app."""
    app.command("adapt")(adapt)


def adapt(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False, help="Checkpoint to adapt (assft .pt)."),
    images: Path = typer.Option(..., "--images", exists=True, file_okay=False,
                                help="Unlabeled target volumes (dataset or folder); labels are never read."),
    out: Path = typer.Option(..., "--out", help="The adapted checkpoint to write (.pt)."),
    method: str = typer.Option(_DEFAULT["method"], "--method", help="adabn (BatchNorm statistics from the pool), tent "
                                                         "(+ entropy minimisation of the norm layers' affine) or "
                                                         "auto (by network kind)."),
    epochs: int = typer.Option(None, "--epochs", help=f"TENT: passes over the pool (default {_DEFAULT['tent_epochs']})."),
    lr: float = typer.Option(None, "--lr", help=f"TENT: Adam learning rate (default {_DEFAULT['tent_lr']:g})."),
    seed: int = typer.Option(0, "--seed", help="TENT's patch sampling (AdaBN is deterministic)."),
    roi: str = typer.Option(None, "--roi", help="Sliding window / TENT patch D,H,W (default: the training patch)."),
) -> None:
    """Adapt a model to a new site without labels; writes a checkpoint that records what was adapted."""
    from assft.config import parse_config
    from assft.errors import ConfigError

    if out.exists() and out.is_dir():
        raise ConfigError("--out is a folder; it must be the checkpoint file to write.", path=out,
                          fix="pass a file name, e.g. --out adapted.pt")
    check_output_file(out, inputs={"--model": model, "--images": images}, kind="checkpoint")
    raw = {"method": method, "seed": seed, "tent_epochs": epochs, "tent_lr": lr, "patch_size": parse_triple(roi)}
    config = parse_config({k: v for k, v in raw.items() if v is not None}, AdaptConfig)
    # After the checks: these load torch and MONAI (seconds), and a refused output should not wait for them.
    from assft.adapt import adapt_checkpoint
    from assft.cli.common import load_data

    result = adapt_checkpoint(model, load_data(images), config, out)  # type: ignore[arg-type]
    console.print(f"{result.method}: adapted {len(result.statistics_layers)} BatchNorm layers' statistics"
                  + (f" and {len(result.affine_layers)} norm layers' affine parameters" if result.affine_layers else "")
                  + f" on {result.n_volumes} volumes in {result.seconds:.1f} s; wrote {out}")
    for note in result.notes:
        console.print(f"note: {note}")
