"""Evaluate a checkpoint (or a folder of predictions) on a labeled dataset: per-case metrics and a summary."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from assft.config import InferenceConfig
from assft.data.cases import DatasetSpec
from assft.data.io import read_volume
from assft.data.preprocess import restore_shape, spacing_of
from assft.errors import DataError
from assft.metrics.segmentation import compute_case_metrics, summarize_metrics
from assft.utils.atomic import atomic_write, atomic_write_json


def evaluate_checkpoint(checkpoint: str | Path, data: DatasetSpec, inference: InferenceConfig | None = None,
                        *, show_progress: bool | None = None) -> list[dict[str, Any]]:
    """Predict each labeled case with the checkpoint and score it -> per-case metric dicts."""
    import torch

    from assft.inference.batched import iter_probs
    from assft.inference.predict import iter_loaded, prepare_model
    from assft.models.checkpoint import build_from_checkpoint
    from assft.utils.progress import progress

    model, ckpt, _ = build_from_checkpoint(checkpoint)
    if ckpt.kind == "ssl-only":
        raise DataError("this checkpoint is ssl-only (no segmentation head) and cannot be evaluated.", path=checkpoint,
                        fix="fine-tune it first with `assft finetune` or `assft train --init`")
    _check_labels_match(ckpt.labels, data)
    inference = inference or InferenceConfig()
    model = prepare_model(model, inference)
    rows = []
    cases = data.cases
    volumes = progress(iter_loaded(cases, ckpt.preprocess, with_label=True), "Evaluating", total=len(cases),
                      enabled=show_progress)
    with torch.inference_mode():  # several volumes per forward call where they fit one window (inference.batched)
        for loaded, probs in iter_probs(model, volumes, inference):
            if loaded.label is None:
                raise DataError(f"case {loaded.case_id} has no label.", path=data.root, fix="evaluate on a labeled set")
            pred = restore_shape(probs, loaded.original_shape).argmax(0).numpy()
            rows.append(_score(loaded.case_id, pred, _original_label(data, loaded.case_id), ckpt.labels,
                               spacing_of(loaded.affine)))
    return rows


def evaluate_predictions(pred_dir: str | Path, data: DatasetSpec) -> list[dict[str, Any]]:
    """Score `pred_dir/ID.nii.gz` label maps against the dataset's labels -> per-case metric dicts."""
    pred_dir = Path(pred_dir)
    rows = []
    for case in data.cases:
        path = pred_dir / f"{case.case_id}.nii.gz"
        pred, _ = read_volume(path, dtype=np.int64)
        true, affine = read_volume(case.label_path, dtype=np.int64)  # type: ignore[arg-type]
        if pred.shape != true.shape:
            raise DataError(f"prediction shape {pred.shape} != label shape {true.shape}.", path=path,
                            fix="predict on the same images the labels belong to")
        rows.append(_score(case.case_id, pred, true, data.labels, spacing_of(affine)))
    return rows


def _original_label(data: DatasetSpec, case_id: str) -> np.ndarray:
    label, _ = read_volume(data.get(case_id).label_path, dtype=np.int64)  # type: ignore[arg-type]
    return label


def _check_labels_match(model_labels: dict[int, str], data: DatasetSpec) -> None:
    if data.labels and set(data.labels) != set(model_labels):
        raise DataError(f"model classes {sorted(model_labels)} differ from the dataset's {sorted(data.labels)}.",
                        path=data.root / "dataset.json", fix="evaluate on a dataset with the model's label map")


def _score(case_id: str, pred: np.ndarray, true: np.ndarray, labels: dict[int, str],
           spacing: tuple[float, float, float]) -> dict[str, Any]:
    num_classes = max(labels) + 1
    metrics = compute_case_metrics(pred, true, num_classes, spacing=spacing, class_names=labels)
    return {"case_id": case_id, **metrics}


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """{'dice': {'A': x}} -> {'dice_A': x} for CSV."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def write_evaluation(rows: list[dict[str, Any]], out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict:
    """Write metrics.csv (one row per case) and summary.json; returns the summary."""
    out_dir = Path(out_dir)
    flat = [flatten_row(r) for r in rows]
    fields = list(flat[0]) if flat else ["case_id"]

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)

    atomic_write(out_dir / "metrics.csv", write_csv)
    summary = {**(extra or {}), **summarize_metrics(rows)} if rows else {**(extra or {}), "n_cases": 0}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
