"""`assft train|predict|evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import check_output_dir, console, load_data, parse_triple

SPLIT_HELP = "Split JSON from `assft data split`."


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)


def train(
    data: Path = typer.Option(..., "--data", help="Labeled dataset folder."),
    out: Path = typer.Option(..., "--out", help="Output folder (best.pt, last.pt, train_log.json)."),
    split: Path = typer.Option(None, "--split", help=SPLIT_HELP),
    subset: str = typer.Option(None, "--subset", help="Split subset to train on (e.g. source)."),
    val_subset: str = typer.Option(None, "--val-subset", help="Split subset used for validation Dice."),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N cases of the training set."),
    val_limit: int = typer.Option(None, "--val-limit", min=1, help="Use only the first N validation cases."),
    model: str = typer.Option("unet", "--arch", help="Registered network architecture (unet, segresnet, swinunetr, "
                                                     "dynunet); a checkpoint to start from is --init."),
    init: Path = typer.Option(None, "--init", help="Start from this assft checkpoint (a new head if classes differ)."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Load what fits from --init."),
    steps: int = typer.Option(300, min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(4, min=1, help="Patches per step."),
    lr: float = typer.Option(2e-3, help="AdamW learning rate."),
    patch: str = typer.Option("40,56,40", help="Patch size D,H,W (multiple of the net's divisor)."),
    normalization: str = typer.Option("zscore", help="zscore or percentile."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Supervised training with validation Dice and best/last checkpoints."""
    from assft.config import ModelConfig, PreprocessConfig, TrainConfig, parse_config

    # Cheap checks first (no torch import yet): a bad option or dataset fails in a second.
    check_output_dir(out, inputs={"--data": data, "--init": init, "--split": split})
    train_config = parse_config({"steps": steps, "batch_size": batch_size, "lr": lr,
                                 "patch_size": parse_triple(patch, "--patch"), "seed": seed}, TrainConfig)
    preprocess = parse_config({"normalization": normalization}, PreprocessConfig)
    train_set = load_data(data, split, subset, limit)
    val_set = load_data(data, split, val_subset, val_limit) if val_subset else None
    from assft.pretrain.supervised import train_supervised
    from assft.models.zoo import MODELS

    MODELS.get(model)  # an unknown --arch: did-you-mean error before the volumes are read

    result = train_supervised(
        train_set, out,
        model_config=ModelConfig(name=model),
        train_config=train_config,  # type: ignore[arg-type]
        preprocess=preprocess,  # type: ignore[arg-type]
        val=val_set, init_checkpoint=init, allow_partial=allow_partial,
    )
    from assft.utils.distributed import join_process_group

    if not join_process_group().is_main:
        return  # under torchrun rank 0 alone writes and prints
    dice = f", best validation Dice {result.best_val_dice:.3f}" if result.best_val_dice is not None else ""
    console.print(f"trained on {len(train_set.cases)} cases in {result.seconds:.0f} s{dice}; wrote {result.best}")


def predict(
    model: Path = typer.Option(..., "--model", help="assft checkpoint (.pt)."),
    images: Path = typer.Option(..., "--images", help="Dataset or folder of images."),
    out: Path = typer.Option(..., "--out", help="Folder for ID.nii.gz label maps."),
    split: Path = typer.Option(None, "--split", help=SPLIT_HELP),
    subset: str = typer.Option(None, "--subset", help="Split subset to predict."),
    probs: bool = typer.Option(False, "--probs/--no-probs", help="Also write ID_probs.nii.gz (D,H,W,C)."),
    roi: str = typer.Option(None, "--roi", help="Sliding-window size D,H,W (default: the training patch)."),
) -> None:
    """Sliding-window prediction; label maps keep the input's affine."""
    from assft.models.checkpoint import build_from_checkpoint
    from assft.utils.paths import check_not_inputs

    check_output_dir(out, inputs={"--model": model, "--images": images, "--split": split})
    roi_size = parse_triple(roi, "--roi")
    net, ckpt, _ = build_from_checkpoint(model)
    cases = load_data(images, split, subset).cases
    # Label maps are named ID.nii.gz, like the images: never write them into a folder that holds inputs.
    check_not_inputs(out, [p for c in cases for p in (*c.image_paths, c.label_path)])
    from assft.inference.predict import predict_to_folder

    inference = ckpt.inference_config(roi_size)
    written = predict_to_folder(net, cases, ckpt.preprocess, inference, out, save_probs=probs)
    console.print(f"wrote {len(written)} label maps to {out}")


def evaluate(
    data: Path = typer.Option(..., "--data", help="Labeled dataset folder."),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.csv and summary.json."),
    model: Path = typer.Option(None, "--model", help="Checkpoint to evaluate (predicts first)."),
    pred: Path = typer.Option(None, "--pred", help="Or: folder of ID.nii.gz predictions to score."),
    split: Path = typer.Option(None, "--split", help=SPLIT_HELP),
    subset: str = typer.Option(None, "--subset", help="Split subset to evaluate on (e.g. test)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N cases."),
    roi: str = typer.Option(None, "--roi", help="Sliding-window size D,H,W."),
) -> None:
    """Per-case Dice, HD95 and NSD (MONAI) to CSV, with a summary JSON."""
    from assft.errors import ConfigError

    if (model is None) == (pred is None):
        raise ConfigError("pass exactly one of --model and --pred.", fix="--model CKPT to predict, or --pred DIR")
    check_output_dir(out, inputs={"--data": data, "--model": model, "--pred": pred, "--split": split})
    roi_size = parse_triple(roi, "--roi")
    spec = load_data(data, split, subset, limit)
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.metrics.evaluation import evaluate_predictions, write_evaluation
    from assft.models.checkpoint import load_checkpoint

    if model is not None:
        ckpt = load_checkpoint(model)
        rows = evaluate_checkpoint(model, spec, ckpt.inference_config(roi_size))
    else:
        rows = evaluate_predictions(pred, spec)
    summary = write_evaluation(rows, out, {"model": str(model) if model else None, "data": str(data)})
    md = summary["mean_dice"]
    console.print(f"{summary['n_cases']} cases: mean Dice {md['mean']:.3f} ± {md['std']:.3f}, "
                  f"HD95 {summary['mean_hd95']['mean']:.2f} mm, NSD {summary['mean_nsd']['mean']:.3f}; wrote {out}")
