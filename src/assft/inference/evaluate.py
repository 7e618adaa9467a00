"""Evaluate a checkpoint on a labeled set: predict each volume (batched pass) and score it with `assft.metrics`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from assft.config import InferenceConfig
from assft.data.cases import DatasetSpec
from assft.data.io import read_volume
from assft.data.preprocess import spacing_of, to_original_grid
from assft.errors import DataError
from assft.inference.engine import iter_probs
from assft.inference.predict import iter_loaded, prepare_model
from assft.metrics.evaluation import score_case
from assft.models.checkpoint import build_from_checkpoint
from assft.utils.progress import deprecated_show_progress, progress

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(checkpoint: str | Path, data: DatasetSpec, inference: InferenceConfig | None = None,
                        *, show_progress: bool | None = None) -> list[dict[str, Any]]:
    """Predict each labeled case with the checkpoint and score it -> per-case metric dicts.

    The loop's progress follows the active reporter (`assft.utils.progress`; `with silenced(): ...` prints nothing);
    `show_progress` is deprecated.
    """
    with deprecated_show_progress(show_progress, "evaluate_checkpoint"):
        return _evaluate(checkpoint, data, inference)


def _evaluate(checkpoint: str | Path, data: DatasetSpec, inference: InferenceConfig | None) -> list[dict[str, Any]]:
    """`evaluate_checkpoint`'s work."""
    model, ckpt, _ = build_from_checkpoint(checkpoint)
    if ckpt.kind == "ssl-only":
        raise DataError("this checkpoint is ssl-only (no segmentation head) and cannot be evaluated.", path=checkpoint,
                        fix="fine-tune it first with `assft finetune` or `assft train --init`")
    _check_labels_match(ckpt.labels, data)
    # an imported network's recorded window (and MONAI's logit blending); assft's own default window otherwise
    inference = inference or ckpt.inference_config(None if "inference" in ckpt.metadata else InferenceConfig().roi_size)
    model = prepare_model(model, inference)
    rows = []
    cases = data.cases
    volumes = progress(iter_loaded(cases, ckpt.preprocess, with_label=True), "Evaluating", total=len(cases))
    with torch.inference_mode():  # several volumes per forward call where they fit one window (inference.engine)
        for loaded, probs in iter_probs(model, volumes, inference):
            if loaded.label is None:
                raise DataError(f"case {loaded.case_id} has no label.", path=data.root, fix="evaluate on a labeled set")
            pred = to_original_grid(probs, loaded).argmax(0).numpy()
            rows.append(score_case(loaded.case_id, pred, _original_label(data, loaded.case_id), ckpt.labels,
                               spacing_of(loaded.affine)))
    return rows


def _original_label(data: DatasetSpec, case_id: str) -> np.ndarray:
    label, _ = read_volume(data.get(case_id).label_path, dtype=np.int64)  # type: ignore[arg-type]
    return label


def _check_labels_match(model_labels: dict[int, str], data: DatasetSpec) -> None:
    if data.labels and set(data.labels) != set(model_labels):
        raise DataError(f"model classes {sorted(model_labels)} differ from the dataset's {sorted(data.labels)}.",
                        path=data.root / "dataset.json", fix="evaluate on a dataset with the model's label map")
