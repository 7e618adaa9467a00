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
    model: str = typer.Option(None, "--arch", show_default=default_of(ModelConfig, "name"),
                              help="Registered network architecture (unet, segresnet, swinunetr, dynunet, ...)."),
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

    check_output_file(out, inputs={"--images": images, "--split": split}, kind="checkpoint")
    from assft.pretrain.pretraining import default_roi, pretrain_ssl, ssl_model_config  # after the check: loads MONAI
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
    format: str = typer.Option(..., "--format", help="swin-ssl, suprem, voco or models-genesis (docs/pretrain.md); "
                                                      "monai, monai-bundle or nnunetv2 (docs/models.md)."),
    weights: Path = typer.Option(..., "--weights", help="The weight file, already downloaded (a MONAI bundle: its "
                                                        "folder; nnunetv2: the results folder of one configuration)."),
    out: Path = typer.Option(..., "--out", help="assft checkpoint to write."),
    fold: str = typer.Option(None, "--fold", help="nnunetv2: the fold to import (default: the only one)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle/--no-trust-pickle",
                                      help="Allow pickled Python objects in the file (only for sources you trust)."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Write it even if encoder keys are missing."),
    fingerprint_images: Path = typer.Option(None, "--fingerprint-images",
                                            help="Optional source-like volumes to compute a fingerprint from."),
    normalization: str = typer.Option("zscore", help="Intensity normalisation stored with it: zscore, percentile, "
                                                     "range or none."),
    seed: int = typer.Option(0, help="Seed of the random init of keys the file lacks (e.g. the decoder)."),
    arch: str = typer.Option(None, "--arch", help="--format monai: the class in monai.networks.nets (e.g. DynUNet)."),
    arch_args: str = typer.Option(None, "--arch-args", help="--format monai: its constructor arguments as JSON."),
    spacing: str = typer.Option(None, "--spacing", help="--format monai: voxel spacing the network expects, mm "
                                                        "(e.g. 1,1,1; default: each volume's own)."),
    orientation: str = typer.Option(None, "--orientation", help="--format monai: axis codes the network expects "
                                                                "(e.g. RAS; default: as stored)."),
    roi: str = typer.Option(None, "--roi", help="--format monai: sliding window D,H,W it was trained with."),
    overlap: float = typer.Option(None, "--overlap", help="--format monai: sliding-window overlap."),
    mode: str = typer.Option(None, "--mode", help="--format monai: window blending, gaussian or constant."),
    labels: str = typer.Option(None, "--labels", help="--format monai: class names, comma-separated, from 0."),
) -> None:
    """Convert pre-trained weights into an assft checkpoint and print the key report."""
    from rich.table import Table

    from assft.config import PreprocessConfig, parse_config

    check_output_file(out, inputs={"--weights": weights, "--fingerprint-images": fingerprint_images},
                      kind="checkpoint")
    monai_only = {"--arch": arch, "--arch-args": arch_args, "--spacing": spacing, "--orientation": orientation,
                  "--roi": roi, "--overlap": overlap, "--mode": mode, "--labels": labels}
    _refuse_unused(format, monai_only, {"--allow-partial": allow_partial or None,
                                        "--fingerprint-images": fingerprint_images}, {"--fold": fold})
    if format == "nnunetv2":
        return _import_nnunet(weights, out, fold, trust_pickle)
    from assft.pretrain.importer import import_weights as run_import
    from assft.pretrain.monai_import import MONAI_FORMATS

    preprocess = parse_config({"normalization": normalization}, PreprocessConfig)
    if format in MONAI_FORMATS:
        result = _import_monai(format, weights, out, trust_pickle, preprocess, arch, arch_args, spacing,
                               orientation, roi, overlap, mode, labels)
    else:
        fp_data = load_data(fingerprint_images) if fingerprint_images is not None else None
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
    kind = "supervised" if format in MONAI_FORMATS else "ssl-only"
    console.print(f"wrote {result.checkpoint} ({kind}){fp}")


def _refuse_unused(format: str, monai_only: dict[str, object], ssl_only: dict[str, object],
                   nnunet_only: dict[str, object]) -> None:
    """An option the chosen --format would ignore is a usage error, not a silent no-op."""
    from assft.errors import ConfigError

    if format == "nnunetv2":
        unused, why = {**monai_only, **ssl_only}, "the results folder's plans define the network, window and preprocessing"
        fix = "drop them"
    elif format == "monai-bundle":
        unused = {**monai_only, **ssl_only, **nnunet_only}
        why = "the bundle's config defines the network, window and preprocessing"
        fix = "drop them, or import the network with --format monai"
    elif format == "monai":
        unused, why = {**ssl_only, **nnunet_only}, "a MONAI network is imported whole"
        fix = "drop them; for KD without BatchNorm run `assft fingerprint --model CKPT --images SOURCE_DIR`"
    else:
        unused, why = {**monai_only, **nnunet_only}, "they describe a MONAI network or pick an nnU-Net fold"
        fix = "drop them, or pass --format monai / nnunetv2"
    given = [option for option, value in unused.items() if value is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} cannot be used with --format {format}: {why}.", fix=fix)


def _import_monai(format: str, weights: Path, out: Path, trust_pickle: bool, preprocess: PreprocessConfig,
                  arch: str | None, arch_args: str | None, spacing: str | None, orientation: str | None,
                  roi: str | None, overlap: float | None, mode: str | None, labels: str | None):
    """--format monai (class + kwargs + options) or monai-bundle (everything from the bundle's config)."""
    import json

    from assft.config import InferenceConfig, parse_config
    from assft.errors import ConfigError
    from assft.pretrain.monai_import import import_monai_bundle, import_monai_network

    if format == "monai-bundle":
        return import_monai_bundle(weights, out, trust_pickle=trust_pickle)
    if arch is None:
        raise ConfigError("--format monai needs --arch (a class of monai.networks.nets) and --arch-args.",
                          fix="e.g. --arch DynUNet --arch-args '{\"spatial_dims\": 3, \"in_channels\": 1, ...}'")
    try:
        kwargs = json.loads(arch_args) if arch_args else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--arch-args is not valid JSON ({exc.msg} at character {exc.pos}).",
                          fix="quote it for the shell: --arch-args '{\"spatial_dims\": 3}'") from exc
    if not isinstance(kwargs, dict):
        raise ConfigError("--arch-args must be a JSON object of constructor arguments.", fix="e.g. '{\"spatial_dims\": 3}'")
    grid = {"normalization": preprocess.normalization, "orientation": orientation,
            "target_spacing": _parse_spacing(spacing)}
    preprocess = parse_config({k: v for k, v in grid.items() if v is not None}, PreprocessConfig)
    window = {"roi_size": parse_triple(roi, "--roi"), "overlap": overlap, "mode": mode}
    inference = parse_config({k: v for k, v in window.items() if v is not None}, InferenceConfig)
    recorded = {"roi_size": list(inference.roi_size), "overlap": inference.overlap, "mode": inference.mode,
                "blend": "logits"}  # MONAI's sliding_window_inference averages the network's outputs, then softmax
    names = {i: n.strip() for i, n in enumerate(labels.split(","))} if labels else None
    return import_monai_network(arch, kwargs, weights, out, preprocess=preprocess, inference=recorded, labels=names,
                                trust_pickle=trust_pickle)


def _parse_spacing(text: str | None) -> tuple[float, float, float] | None:
    """'0.5,0.5,3' -> (0.5, 0.5, 3.0); one number means isotropic."""
    if text is None:
        return None
    from assft.errors import ConfigError

    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--spacing: cannot parse {text!r}.", fix="write three spacings in mm, e.g. 1,1,1") from exc
    parts = parts * 3 if len(parts) == 1 else parts
    if len(parts) != 3 or min(parts) <= 0:
        raise ConfigError(f"--spacing: {text!r} is not three positive spacings.", fix="e.g. 1,1,1 or 0.5,0.5,3")
    return parts  # type: ignore[return-value]


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
