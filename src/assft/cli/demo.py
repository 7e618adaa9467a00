"""`assft demo`: the end-to-end example on an embedded default (generated phantoms) or on real data."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from assft.cli.common import console


def register(app: typer.Typer) -> None:
    """Add the command to the root app."""
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("assft_demo"), "--out", help="Folder for everything the demo writes."),
    data: Path = typer.Option(None, "--data", help="Real labeled dataset (e.g. MSD hippocampus) instead of phantoms."),
    steps: int = typer.Option(150, help="Training steps of the source model."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Generate data (or use --data), train a source model, predict and evaluate on source and shifted target."""
    from assft.config import InferenceConfig, ModelConfig, TrainConfig
    from assft.data import load_dataset, make_split, save_split
    from assft.data.synthetic import make_phantom_dataset
    from assft.domains import apply_domain_to_dataset
    from assft.evaluation import evaluate_checkpoint, write_evaluation
    from assft.finetune.supervised import train_supervised

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        console.print("[bold]1/4[/] generating 24 CT-like phantoms (32^3)")
        data = make_phantom_dataset(out / "phantoms", 24, shape=(32, 32, 32), seed=seed, contrast="ct")
        patch = (32, 32, 32)
    else:
        patch = (40, 56, 40)
    spec = load_dataset(data)
    splits = make_split(spec.case_ids, {"source": 0.5, "test": 0.5}, seed)
    save_split(out / "split.json", splits, seed=seed, fractions={"source": 0.5, "test": 0.5}, dataset=data)
    console.print(f"[bold]2/4[/] training a source UNet on {len(splits['source'])} cases ({steps} steps)")
    trained = train_supervised(spec.subset(splits["source"]), out / "source_model", model_config=ModelConfig(),
                               train_config=TrainConfig(steps=steps, patch_size=patch, seed=seed, val_every=steps))
    console.print("[bold]3/4[/] simulating a shifted target domain (t2like)")
    target = load_dataset(apply_domain_to_dataset(data, out / "target_t2like", "t2like", seed))
    console.print("[bold]4/4[/] evaluating on the source test split and on the target domain")
    inference = InferenceConfig(roi_size=patch)
    rows = []
    for name, dataset in (("source", spec), ("target_t2like", target)):
        result = evaluate_checkpoint(trained.best, dataset.subset(splits["test"]), inference)
        summary = write_evaluation(result, out / f"eval_{name}")
        rows.append((name, summary["mean_dice"]["mean"]))
    for name, dice in rows:
        console.print(f"  {name:>14}: mean Dice {dice:.3f}")
    console.print(f"done in {time.perf_counter() - start:.0f} s; results in {out}")
