"""`assft import --format nnunetv2` and `assft export --format nnunetv2`: an nnU-Net v2 results folder <-> an assft
checkpoint whose preprocessing is nnU-Net's own (assft.data.nnunet) and whose network nnU-Net builds
(assft.models.nnunet).

A results folder is one configuration's training output: plans.json, dataset.json, dataset_fingerprint.json and
fold_K/checkpoint_final.pth. The export writes the same layout back, so nnU-Net's own predictor
(`nnUNetPredictor.initialize_from_trained_model_folder`) loads an assft-adapted model unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assft.config import ModelConfig, NnunetPreprocess, PreprocessConfig
from assft.errors import CheckpointError, ConfigError
from assft.models.checkpoint import (KeyReport, blocked_global, compare_state_dicts, is_blocked_pickle, load_checkpoint,
                                     make_checkpoint, save_checkpoint)

RESULTS_FIX = ("pass the results folder of one nnU-Net v2 configuration, e.g. "
               "nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres")


def nnunet_safe_globals() -> list:
    """The non-tensor types nnU-Net's trainer stores in checkpoint_final.pth besides builtins and torch.device:
    numpy scalars and dtypes (the logger's Dice values and `_best_ema` are numpy float64)."""
    import numpy.dtypes as npd

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar  # type: ignore[attr-defined]
    return [scalar, np.dtype, npd.Float64DType, npd.Float32DType, npd.Int64DType, npd.Int32DType, npd.BoolDType]


def read_nnunet_checkpoint(path: Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """Load nnU-Net's `checkpoint_final.pth` with torch.load(weights_only=True) and the allow-list above.

    Raises:
        CheckpointError: missing file, pickled code (unless `trust_pickle`), or no `network_weights`.
    """
    if not path.is_file():
        raise CheckpointError("nnU-Net checkpoint not found.", path=path,
                              fix="pass a results folder whose fold_K/ holds checkpoint_final.pth (finish training "
                                  "first, or check --fold)")
    try:
        if trust_pickle:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(nnunet_safe_globals()):
                raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle and is_blocked_pickle(exc):
            raise CheckpointError(f"the nnU-Net checkpoint contains pickled Python code beyond what nnU-Net stores "
                                  f"({blocked_global(exc)}); it was not loaded, since loading it could run that code.",
                                  path=path, fix="only if you trust the file's source, pass --trust-pickle") from exc
        raise CheckpointError(f"not a readable PyTorch file ({type(exc).__name__}: {str(exc)[:160]}).", path=path,
                              fix="pass the results folder of a finished nnU-Net v2 training") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("network_weights"), dict):
        raise CheckpointError("no 'network_weights' in the file: not an nnU-Net v2 checkpoint.", path=path,
                              fix="pass the results folder of an nnU-Net v2 training (fold_K/checkpoint_final.pth)")
    return raw


@dataclass
class NnunetImport:
    """What `import_nnunet` wrote and how the checkpoint's keys matched the network built from the plans."""

    checkpoint: Path
    model_config: ModelConfig
    report: KeyReport
    description: NnunetPreprocess


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no {path.name} in the results folder.", path=path.parent, fix=RESULTS_FIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name} is not readable JSON ({type(exc).__name__}).", path=path,
                              fix="restore it from the nnU-Net results folder") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} is not a JSON object.", path=path, fix=RESULTS_FIX)
    return data


def _pick_fold(folder: Path, fold: str | None) -> str:
    available = sorted(p.name[len("fold_"):] for p in folder.glob("fold_*") if p.is_dir())
    if fold is not None:
        if fold not in available:
            raise CheckpointError(f"fold {fold!r} does not exist (folds here: {', '.join(available) or 'none'}).",
                                  path=folder, fix="pass one of them with --fold")
        return fold
    if len(available) != 1:
        raise CheckpointError(f"{'no fold_K folder' if not available else 'several folds: ' + ', '.join(available)}"
                              " in the results folder.", path=folder,
                              fix="pass --fold K (assft adapts one fold's network)" if available else RESULTS_FIX)
    return available[0]


def import_nnunet(results: str | Path, out: str | Path, *, fold: str | None = None,
                  trust_pickle: bool = False) -> NnunetImport:
    """Convert one fold of an nnU-Net v2 results folder into a supervised assft checkpoint.

    The checkpoint records the plans, dataset.json, fingerprint, configuration, trainer, fold and the plans' SHA-256,
    so every assft pass preprocesses as nnU-Net does and `export_nnunet` can write the folder back.

    Raises:
        CheckpointError: not a results folder, missing fold, pickled code, keys that do not fit the plans' network.
        ConfigError: nnunetv2 not installed; a configuration assft cannot run (2D, cascade, region-based).
    """
    from assft.data.nnunet import managers, require_nnunetv2
    from assft.models.zoo import build_model

    require_nnunetv2()
    folder = Path(results)
    if not folder.is_dir():
        raise CheckpointError("expected an nnU-Net results folder.", path=folder, fix=RESULTS_FIX)
    plans = _read_json(folder / "plans.json")
    dataset_json = _read_json(folder / "dataset.json")
    fingerprint_path = folder / "dataset_fingerprint.json"
    fingerprint = _read_json(fingerprint_path) if fingerprint_path.is_file() else None
    fold = _pick_fold(folder, fold)
    raw = read_nnunet_checkpoint(folder / f"fold_{fold}" / "checkpoint_final.pth", trust_pickle=trust_pickle)
    init_args = raw.get("init_args") or {}
    configuration = str(init_args.get("configuration", ""))
    if configuration not in plans.get("configurations", {}):
        raise CheckpointError(f"the checkpoint's configuration {configuration!r} is not in plans.json.",
                              path=folder / "plans.json", fix="pass the results folder the checkpoint was trained in")
    mirror = raw.get("inference_allowed_mirroring_axes")
    description = NnunetPreprocess(
        plans=plans, dataset_json=dataset_json, configuration=configuration, fingerprint=fingerprint,
        trainer=str(raw.get("trainer_name", "nnUNetTrainer")), fold=fold,
        plans_sha256=hashlib.sha256((folder / "plans.json").read_bytes()).hexdigest(),
        mirror_axes=tuple(int(a) for a in mirror) if mirror is not None else None)
    plans_manager, config_manager, labels, _ = managers(description)
    _check_runnable(config_manager, labels, plans_manager, configuration, folder)
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    model_config = ModelConfig(name="nnunetv2", dropout=0.0,
                               in_channels=determine_num_input_channels(plans_manager, config_manager, dataset_json),
                               out_channels=labels.num_segmentation_heads,
                               params={"arch_class_name": config_manager.network_arch_class_name,
                                       "arch_kwargs": config_manager.network_arch_init_kwargs,
                                       "arch_kwargs_req_import": config_manager.network_arch_init_kwargs_req_import,
                                       "patch_size": tuple(config_manager.patch_size), "tile_step_size": 0.5})
    model = build_model(model_config)
    weights = {k: v for k, v in raw["network_weights"].items()}
    report = compare_state_dicts(model.state_dict(), weights)
    if report.missing or report.unexpected or report.mismatched:
        raise CheckpointError(f"the weights do not fit the network nnU-Net builds from plans.json ({report.summary()}).",
                              path=folder / f"fold_{fold}" / "checkpoint_final.pth",
                              fix=f"trainer {description.trainer} may build its own network; assft imports networks "
                                  "built from the plans (nnUNetTrainer and its variants that keep the plans' "
                                  "architecture)")
    model.load_state_dict(weights)
    names = {int(v): str(k) for k, v in dataset_json["labels"].items()}
    metadata = {"imported_from": str(folder), "import_format": "nnunetv2",
                "nnunet": {"plans_sha256": description.plans_sha256, "fold": fold, "trainer": description.trainer,
                           "configuration": configuration, "plans_name": plans.get("plans_name"),
                           "dataset_name": plans.get("dataset_name")},
                "train_config": {"patch_size": list(config_manager.patch_size)}}
    preprocess = PreprocessConfig(scheme="nnunetv2", nnunet=description)
    ckpt = make_checkpoint(model, model_config, dict(sorted(names.items())), kind="supervised", preprocess=preprocess,
                           metadata=metadata)
    save_checkpoint(out, ckpt)
    return NnunetImport(Path(out), model_config, report, description)


def _check_runnable(config_manager: Any, labels: Any, plans_manager: Any, configuration: str, folder: Path) -> None:
    """assft runs 3D, single-stage, softmax (label-based) nnU-Net models."""
    problem = None
    if len(config_manager.patch_size) != 3:
        problem = f"configuration {configuration!r} is 2D; assft adapts 3D networks"
    elif config_manager.previous_stage_name is not None:
        problem = f"configuration {configuration!r} is a cascade stage (it needs the previous stage's segmentation)"
    elif labels.has_regions:
        problem = "the model is region-based (sigmoid outputs); assft's passes need softmax classes"
    if problem is not None:
        raise ConfigError(f"{problem}.", path=folder, fix="import a 3d_fullres or 3d_lowres results folder")


def export_nnunet(checkpoint: str | Path, out: str | Path) -> Path:
    """Write an assft checkpoint of an nnU-Net model back as a results folder nnU-Net's own predictor loads.

    Layout: plans.json, dataset.json, dataset_fingerprint.json (when the import had one) and
    fold_K/checkpoint_final.pth in nnU-Net's trainer layout (network_weights, init_args, trainer_name,
    inference_allowed_mirroring_axes; no optimizer state: continue in nnU-Net with -pretrained_weights).

    Raises:
        CheckpointError: not an nnU-Net model, head/labels changed, or the output folder exists and is not empty.
    """
    from assft.data.nnunet import require_nnunetv2

    require_nnunetv2()
    out = Path(out)
    ckpt = load_checkpoint(checkpoint)
    description = ckpt.preprocess.nnunet
    if ckpt.preprocess.scheme != "nnunetv2" or description is None or ckpt.model_config.name != "nnunetv2":
        raise CheckpointError("only a checkpoint imported from nnU-Net (`assft import --format nnunetv2`) can be "
                              "exported as an nnU-Net results folder: nnU-Net needs the plans it was trained with.",
                              path=checkpoint, fix="export a checkpoint whose history starts at `assft import "
                                                   "--format nnunetv2`")
    names = {int(v): str(k) for k, v in description.dataset_json["labels"].items()}
    if names != dict(ckpt.labels) or ckpt.model_config.out_channels != len(names):
        raise CheckpointError(f"the model's classes {ckpt.labels} differ from the nnU-Net dataset.json's {names}.",
                              path=checkpoint, fix="export a model that kept the imported segmentation head")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError("the output folder exists and is not empty.", path=out,
                              fix="pass a new folder with --out (nothing is overwritten)")
    nnunet_checkpoint = {
        "network_weights": OrderedDict((k, v.clone()) for k, v in ckpt.state_dict.items()),
        "optimizer_state": None, "grad_scaler_state": None, "logging": {}, "_best_ema": None, "current_epoch": 0,
        "init_args": {"plans": description.plans, "configuration": description.configuration,
                      "fold": int(description.fold) if description.fold.isdigit() else description.fold,
                      "dataset_json": description.dataset_json, "device": torch.device("cpu")},
        "trainer_name": description.trainer,
        "inference_allowed_mirroring_axes": description.mirror_axes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:  # everything is written beside the target first, then moved in one rename
        (staging / "plans.json").write_text(json.dumps(description.plans, indent=2), encoding="utf-8")
        (staging / "dataset.json").write_text(json.dumps(description.dataset_json, indent=2), encoding="utf-8")
        if description.fingerprint is not None:
            (staging / "dataset_fingerprint.json").write_text(json.dumps(description.fingerprint, indent=2),
                                                              encoding="utf-8")
        fold_dir = staging / f"fold_{description.fold}"
        fold_dir.mkdir()
        torch.save(nnunet_checkpoint, fold_dir / "checkpoint_final.pth")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
