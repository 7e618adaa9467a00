"""Supervised training of a registered network on a labeled dataset; writes best/last checkpoints and a log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from assft.config import InferenceConfig, ModelConfig, PreprocessConfig, TrainConfig
from assft.data.cases import DatasetSpec
from assft.data.checks import check_dataset, check_label_values
from assft.data.preprocess import load_case
from assft.errors import DataError
from assft.finetune.trainer import FitResult, fit
from assft.models.checkpoint import Checkpoint, build_from_checkpoint, make_checkpoint, save_checkpoint
from assft.models.source_stats import SOURCE_INTENSITY_KEY, compute_source_intensity
from assft.models.zoo import build_model, check_sizes
from assft.utils.atomic import atomic_write_json
from assft.utils.distributed import join_process_group
from assft.utils.seeding import isolated_rng, seed_everything
from assft.utils.threads import threads_for_call


@dataclass
class TrainOutput:
    """Paths and numbers from `train_supervised`."""

    best: Path
    last: Path
    log: Path
    best_val_dice: float | None
    seconds: float


@isolated_rng
def train_supervised(
    train: DatasetSpec,
    out_dir: str | Path,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    preprocess: PreprocessConfig | None = None,
    val: DatasetSpec | None = None,
    init_checkpoint: str | Path | None = None,
    allow_partial: bool = False,
) -> TrainOutput:
    """Train on every labeled case of `train` (validating on `val`), writing best.pt, last.pt and train_log.json."""
    start = time.perf_counter()
    train_config = train_config or TrainConfig()
    if not train.has_labels:
        raise DataError("training needs a label for every case.", path=train.root,
                        fix="use a labeled dataset (labelsTr) or a split subset that has labels")
    if not train.labels:  # a plain folder: without this, a 0-channel head and a torch warning
        from assft.data.dataset_init import missing_classes_error

        raise missing_classes_error(train)
    check_dataset(train, read_data=False).raise_if_problems()
    num_classes = train.num_classes
    seed_everything(train_config.seed)  # a new head (or a new net) is initialised reproducibly
    if init_checkpoint is not None:
        model, ckpt, report = build_from_checkpoint(init_checkpoint, out_channels=num_classes, allow_partial=allow_partial)
        model_config = ckpt.model_config
        preprocess = preprocess or ckpt.preprocess  # the normalisation the weights were trained with
        init_info = {"init_checkpoint": str(init_checkpoint), "key_report": report.to_dict()}
    else:
        model_config = (model_config or ModelConfig()).model_copy(update={"out_channels": num_classes})
        model = build_model(model_config)
        init_info = {"init_checkpoint": None}
    preprocess = preprocess or PreprocessConfig()
    check_sizes(model_config, train_config.patch_size)
    # a config's thread count holds for this call only; the caller's policy comes back
    with threads_for_call(train_config.num_threads):
        # load_case validates each label against its image (shape, affine, integer values); here the values against the
        # label map, so no label is truncated or one-hot encoded out of range once training has started.
        labeled = [load_case(c, preprocess) for c in train.cases]
        val_cases = [load_case(c, preprocess) for c in val.cases] if val is not None else []
        for case, loaded in zip([*train.cases, *(val.cases if val is not None else [])], [*labeled, *val_cases]):
            if loaded.label is not None:
                check_label_values(loaded.label, train.labels, case.label_path)
        inference = InferenceConfig(roi_size=train_config.patch_size, device=train_config.device, channels_last=False)
        result: FitResult = fit(model, labeled, train_config, num_classes, val=val_cases, inference=inference)
        out_dir = Path(out_dir)
        metadata = {"train_cases": train.case_ids, "val_cases": val.case_ids if val else [],
                    "dataset": str(train.root), "train_config": train_config.model_dump(mode="json"),
                    "best_val_dice": result.best_val_dice, **init_info,
                    # source intensity statistics travel with the model: kd.source "intensity" needs no source image
                    SOURCE_INTENSITY_KEY: compute_source_intensity(labeled, seed=train_config.seed)}
        if not join_process_group().is_main:  # under torchrun rank 0 alone writes; the others return its paths
            return TrainOutput(out_dir / "best.pt", out_dir / "last.pt", out_dir / "train_log.json",
                               result.best_val_dice, time.perf_counter() - start)
        for name, state in (("best", result.best_state), ("last", result.last_state)):
            model.load_state_dict(state)
            ckpt: Checkpoint = make_checkpoint(model, model_config, train.labels, kind="supervised",
                                               preprocess=preprocess, metadata={**metadata, "which": name})
            save_checkpoint(out_dir / f"{name}.pt", ckpt)
        log = atomic_write_json(out_dir / "train_log.json", {**metadata, "seconds": result.seconds,
                                                             "history": result.history})
        return TrainOutput(out_dir / "best.pt", out_dir / "last.pt", log, result.best_val_dice,
                           time.perf_counter() - start)
