"""`assft pretrain` (self-supervised pre-training) and `assft import` (public weights -> assft checkpoint)."""

from __future__ import annotations

from pathlib import Path

import typer

from assft.cli.common import check_output_file, console, default_of, load_data, parse_triple
from assft.config import ModelConfig, PreprocessConfig
from assft.pretrain.config import PretrainConfig

PC = PretrainConfig  # help texts read the defaults from it

SPLIT_HELP = "Split JSON from `assft data split`."


def register(app: typer.Typer) -> None:
    """Add the commands to the root app."""
    app.command("pretrain")(pretrain)
    app.command("import")(import_weights)
    app.command("export")(export_weights)


def pretrain(
    images: Path = typer.Option(..., "--images", help="Unlabeled volumes: a dataset folder or a folder of images."),
    out: Path = typer.Option(..., "--out", help="Checkpoint to write (NAME.resume.pt and fingerprint.json beside it)."),
    model: str = typer.Option(None, "--model", show_default=default_of(ModelConfig, "name"),
                              help="Registered network (unet, segresnet, swinunetr, dynunet, ...)."),
    split: Path = typer.Option(None, "--split", help=SPLIT_HELP),
    subset: str = typer.Option(None, "--subset", help="Split subset to pre-train on (e.g. source)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N volumes."),
    tasks: str = typer.Option(None, show_default=default_of(PC, "tasks"),
                              help="Comma-separated pretext tasks (inpaint, rotation, contrastive)."),
    steps: int = typer.Option(None, show_default=default_of(PC, "steps"), help="Optimizer steps."),
    batch_size: int = typer.Option(None, show_default=default_of(PC, "batch_size"), help="Patches per step."),
    patch: int = typer.Option(None, show_default=default_of(PC, "patch_size"),
                              help="Cubic patch edge (a multiple of the network's divisor)."),
    lr: float = typer.Option(None, show_default=default_of(PC, "lr"), help="AdamW learning rate."),
    mask_ratio: float = typer.Option(None, show_default=default_of(PC, "mask_ratio"),
                                     help="Fraction of each patch hidden by masked cubes."),
    save_every: int = typer.Option(None, show_default=default_of(PC, "save_every"),
                                   help="Steps between resume states."),
    fingerprint_cases: int = typer.Option(None, help="Volumes used for the source fingerprint (default: all)."),
    roi: str = typer.Option(None, "--roi", help="Sliding window D,H,W for the fingerprint pass."),
    normalization: str = typer.Option(None, show_default=default_of(PreprocessConfig, "normalization"),
                                      help="zscore or percentile."),
    seed: int = typer.Option(None, show_default=default_of(PC, "seed"), help="Seed."),
    resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from NAME.resume.pt if it exists."),
) -> None:
    """Self-supervised pre-training (masked inpainting + rotation) -> an ssl-only checkpoint with a fingerprint."""
    from assft.config import InferenceConfig, parse_config
    from assft.pretrain.pretraining import default_roi, pretrain_ssl, ssl_model_config

    check_output_file(out)
    given = {"tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks is not None else None,
             "steps": steps, "batch_size": batch_size, "patch_size": patch, "lr": lr, "mask_ratio": mask_ratio,
             "save_every": save_every, "fingerprint_cases": fingerprint_cases, "seed": seed}
    config = parse_config({k: v for k, v in given.items() if v is not None}, PretrainConfig)
    model_config = ModelConfig(**({"name": model} if model is not None else {}))
    inference = InferenceConfig(roi_size=default_roi(ssl_model_config(model_config), parse_triple(roi, "--roi")),
                                channels_last=False)
    preprocess = parse_config({"normalization": normalization} if normalization else {}, PreprocessConfig)
    data = load_data(images, split, subset, limit)
    result = pretrain_ssl(data, out, model_config=model_config, config=config,  # type: ignore[arg-type]
                          preprocess=preprocess, inference=inference, resume=resume)
    losses = ", ".join(f"{k} {v:.3f}" for k, v in result.final_losses().items())
    resumed = f" (resumed at step {result.resumed_from_step})" if result.resumed_from_step else ""
    console.print(f"pre-trained on {len(data.cases)} volumes in {result.seconds:.0f} s{resumed}; final {losses}")
    console.print(f"wrote {result.checkpoint} (ssl-only) and {result.fingerprint}")


def import_weights(
    format: str = typer.Option(..., "--format", help="swin-ssl, suprem, voco, models-genesis (docs/pretrain.md) or "
                                                     "nnunetv2 (a results folder; docs/models.md)."),
    weights: Path = typer.Option(..., "--weights", help="The public weight file, already downloaded (nnunetv2: the "
                                                       "results folder of one configuration)."),
    out: Path = typer.Option(..., "--out", help="assft checkpoint to write."),
    fold: str = typer.Option(None, "--fold", help="nnunetv2: the fold to import (default: the only one)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle/--no-trust-pickle",
                                      help="Allow pickled Python objects in the file (only for sources you trust)."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Write it even if encoder keys are missing."),
    fingerprint_images: Path = typer.Option(None, "--fingerprint-images",
                                            help="Optional source-like volumes to compute a fingerprint from."),
    normalization: str = typer.Option("zscore", help="Intensity normalisation stored with it: zscore or percentile."),
    seed: int = typer.Option(0, help="Seed of the random init of keys the file lacks (e.g. the decoder)."),
) -> None:
    """Convert public pre-trained weights into an ssl-only assft checkpoint and print the key report."""
    from rich.table import Table

    from assft.config import PreprocessConfig, parse_config

    check_output_file(out)
    if format == "nnunetv2":
        return _import_nnunet(weights, out, fold, trust_pickle)
    from assft.pretrain.importer import import_weights as run_import

    fp_data = load_data(fingerprint_images) if fingerprint_images is not None else None
    preprocess = parse_config({"normalization": normalization}, PreprocessConfig)
    result = run_import(format, weights, out, trust_pickle=trust_pickle, allow_partial=allow_partial, seed=seed,
                        preprocess=preprocess, fingerprint_data=fp_data)  # type: ignore[arg-type]
    report = result.report
    table = Table(title=f"{weights.name} as {format} -> {result.model_config.name} "
                        f"{result.model_config.params}", show_header=True)
    table.add_column("keys")
    table.add_column("count", justify="right")
    table.add_column("examples")
    table.add_row("loaded", str(len(report.loaded)), ", ".join(report.loaded[:2]))
    table.add_row("missing (random init)", str(len(report.missing)), ", ".join(report.missing[:3]))
    table.add_row("unexpected (ignored)", str(len(report.unexpected)), ", ".join(report.unexpected[:3]))
    table.add_row("shape-mismatched", str(len(report.mismatched)),
                  ", ".join(f"{k} {a} vs {b}" for k, a, b in report.mismatched[:2]))
    console.print(table)
    fp = f" and {result.fingerprint}" if result.fingerprint else ""
    console.print(f"wrote {result.checkpoint} (ssl-only){fp}")


def _import_nnunet(results: Path, out: Path, fold: str | None, trust_pickle: bool) -> None:
    from assft.pretrain.nnunet import import_nnunet

    result = import_nnunet(results, out, fold=fold, trust_pickle=trust_pickle)
    d = result.description
    console.print(f"nnU-Net {d.configuration} fold {d.fold} ({d.trainer}, plans {d.plans_sha256[:12]}): "
                  f"{result.report.summary()}; patch {tuple(result.model_config.params['patch_size'])}")
    console.print(f"wrote {result.checkpoint} (supervised; nnU-Net's preprocessing and sliding window)")


def export_weights(
    checkpoint: Path = typer.Argument(..., help="assft checkpoint of a model imported from nnU-Net (fine-tuned or not)."),
    format: str = typer.Option(..., "--format", help="nnunetv2: an nnU-Net v2 results folder."),
    out: Path = typer.Option(..., "--out", help="Folder to create (must not exist, or be empty)."),
) -> None:
    """Write a model back in its owner's format (nnunetv2: a results folder nnU-Net's predictor loads)."""
    from assft.errors import ConfigError

    if format != "nnunetv2":
        raise ConfigError(f"--format {format!r} cannot be exported.", fix="use --format nnunetv2")
    from assft.pretrain.nnunet import export_nnunet

    console.print(f"wrote {export_nnunet(checkpoint, out)} (nnU-Net v2 results folder)")
