"""Score label maps against the reference labels and write the per-case table and summary (no model involved).

`assft.inference.evaluate` runs a model and hands its label maps here; `assft evaluate --pred` scores files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from assft.data.cases import DatasetSpec
from assft.data.geometry import read_label_on_grid
from assft.data.io import read_volume
from assft.data.preprocess import spacing_of
from assft.metrics.segmentation import compute_case_metrics, summarize_metrics
from assft.utils.atomic import atomic_write, atomic_write_json

__all__ = ["evaluate_predictions", "flatten_row", "score_case", "write_evaluation"]


def evaluate_predictions(pred_dir: str | Path, data: DatasetSpec) -> list[dict[str, Any]]:
    """Score `pred_dir/ID.nii.gz` label maps against the dataset's labels -> per-case metric dicts."""
    pred_dir = Path(pred_dir)
    rows = []
    for case in data.cases:
        path = pred_dir / f"{case.case_id}.nii.gz"
        true, affine = read_volume(case.label_path, dtype=np.int64)  # type: ignore[arg-type]
        # The prediction's own affine counts: it is compared in world space (reoriented when stored otherwise).
        pred, _ = read_label_on_grid(path, true.shape, affine, data.labels or None, what="prediction",
                                     reference=f"the reference label {case.label_path}",
                                     source="the dataset's classes")
        rows.append(score_case(case.case_id, pred, true, data.labels, spacing_of(affine)))
    return rows


def score_case(case_id: str, pred: np.ndarray, true: np.ndarray, labels: dict[int, str],
               spacing: tuple[float, float, float]) -> dict[str, Any]:
    """Dice, HD95 and NSD per class of one case's label map (D, H, W) against its reference (D, H, W)."""
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
