"""Per-case, per-class Dice / HD95 / NSD via MONAI's ``compute_*`` functions, with an explicit empty-label policy.

Empty-label policy (applied per foreground class, before MONAI is called, so NaN/inf never reach the caller):

==========================  ======  ======  ==========================================
prediction / target          dice    nsd     hd95 (mm)
==========================  ======  ======  ==========================================
both empty                   1.0     1.0     0.0
exactly one empty            0.0     0.0     image diagonal ``sqrt(sum((n_i * s_i)^2))``
both non-empty               MONAI   MONAI   MONAI (95th percentile, symmetric)
==========================  ======  ======  ==========================================

The diagonal is the physical extent of the volume (shape times spacing), which is larger than any distance MONAI
can return for that volume, so a missed or hallucinated structure is always the worst finite HD95 of the case.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from assft.errors import ConfigError, DataError

__all__ = ["METRIC_NAMES", "compute_case_metrics", "summarize_metrics"]

METRIC_NAMES: tuple[str, ...] = ("dice", "hd95", "nsd")


def _as_label_map(label_map: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Convert a (D, H, W) integer-valued array/tensor to an int64 CPU tensor, rejecting non-integral values."""
    if isinstance(label_map, torch.Tensor):
        tensor = label_map.detach().cpu()
    else:
        tensor = torch.as_tensor(np.ascontiguousarray(label_map))
    if tensor.ndim != 3:
        raise DataError(
            f"{name} must be a 3D label map (D, H, W); found shape {tuple(tensor.shape)}.",
            fix="pass an argmax label map without batch or channel dimensions",
        )
    if tensor.dtype == torch.bool:
        return tensor.to(torch.int64)
    if tensor.is_floating_point() or tensor.is_complex():
        if not bool(torch.all(torch.isfinite(tensor))) or not bool(torch.all(tensor == torch.round(tensor))):
            raise DataError(
                f"{name} contains non-integer or non-finite values; expected integer class labels.",
                fix="pass argmax labels (probs.argmax(0)), not probabilities or logits",
            )
    return tensor.to(torch.int64)


def _check_inputs(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, spacing: Sequence[float], nsd_tolerance_mm: float
) -> tuple[float, ...]:
    """Validate shapes, label range, spacing and tolerance; return spacing as a tuple of 3 floats."""
    if tuple(pred.shape) != tuple(target.shape):
        raise DataError(
            f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}.",
            fix="resample the prediction onto the label grid before computing metrics",
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(
            f"num_classes must be an integer >= 2 (background + at least one class); got {num_classes!r}."
        )
    for name, tensor in (("prediction", pred), ("target", target)):
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= num_classes):
            found = sorted(int(v) for v in torch.unique(tensor))
            raise DataError(
                f"{name} has label values {found}; expected values in 0..{num_classes - 1}.",
                fix="check num_classes or the label map",
            )
    spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing_t):
        raise ConfigError(f"spacing must be 3 positive finite numbers (mm); got {tuple(spacing)!r}.")
    if not math.isfinite(nsd_tolerance_mm) or nsd_tolerance_mm < 0:
        raise ConfigError(f"nsd_tolerance_mm must be a finite number >= 0; got {nsd_tolerance_mm!r}.")
    return spacing_t


def _resolve_class_names(num_classes: int, class_names: Mapping[int, str] | None) -> dict[int, str]:
    """Map foreground class index -> report name (``str(c)`` by default); extra keys such as 0 are ignored."""
    classes = range(1, num_classes)
    if class_names is None:
        return {c: str(c) for c in classes}
    missing = [c for c in classes if c not in class_names]
    if missing:
        raise ConfigError(
            f"class_names has no entry for foreground classes {missing}; got keys {sorted(class_names)}.",
            fix="give a name for every class 1..num_classes-1, or pass class_names=None",
        )
    names = {c: str(class_names[c]) for c in classes}
    if len(set(names.values())) != len(names):
        raise ConfigError(f"class_names must be unique; got {names}.")
    return names


def _onehot(label_map: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """(D, H, W) int -> (1, K, D, H, W) float32 binary masks for the listed classes."""
    return torch.stack([label_map == c for c in classes]).unsqueeze(0).to(torch.float32)


def _monai_metrics(
    pred: torch.Tensor, target: torch.Tensor, classes: Sequence[int], spacing: tuple[float, ...], tolerance: float,
    dice_only: bool = False,
) -> tuple[list[float], list[float], list[float]]:
    """Dice, HD95 and NSD from MONAI for classes present in both maps; returns three lists of length K (HD95 and NSD
    empty with `dice_only`: the surface distances cost ~30x the Dice)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice  # heavy: ~3 s import

    y_pred, y = _onehot(pred, classes), _onehot(target, classes)
    with warnings.catch_warnings():
        # MONAI 1.5+ calls its own deprecated ``always_return_as_numpy`` argument internally; not actionable here.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        dice = compute_dice(y_pred, y, include_background=True, ignore_empty=False)
        if dice_only:
            return dice[0].tolist(), [], []
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(spacing))
        nsd = compute_surface_dice(
            y_pred, y, class_thresholds=[tolerance] * len(classes), include_background=True, spacing=list(spacing)
        )
    return dice[0].tolist(), hd95[0].tolist(), nsd[0].tolist()


def _finite(value: float, fallback: float) -> float:
    """Return ``value`` as float, or ``fallback`` if it is NaN/inf (defensive: MONAI must never leak NaN)."""
    value = float(value)
    return value if math.isfinite(value) else float(fallback)


def compute_case_metrics(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    nsd_tolerance_mm: float = 1.0,
    class_names: Mapping[int, str] | None = None,
    dice_only: bool = False,
) -> dict[str, Any]:
    """Dice, HD95 (mm) and NSD per foreground class for one case; pred/target are (D, H, W) int label maps.

    Args:
        pred: predicted label map (D, H, W), integer values in 0..num_classes-1.
        target: reference label map (D, H, W), same shape as ``pred``.
        num_classes: number of classes including background 0; metrics cover classes 1..num_classes-1.
        spacing: voxel size in mm along (D, H, W); scales HD95 and the NSD tolerance.
        nsd_tolerance_mm: surface distance (mm) within which boundary voxels count as agreeing for NSD.
        class_names: optional {class index: name} used as keys of the per-class dicts (default ``str(c)``).
        dice_only: compute the Dice only (``"dice"`` and ``"mean_dice"`` in the result).

    Returns:
        ``{"dice": {name: float}, "hd95": {...}, "nsd": {...}, "mean_dice": float, "mean_hd95": float,
        "mean_nsd": float}``; all values finite, following the empty-label policy of this module.

    Raises:
        DataError: shapes differ, maps are not 3D, or labels are non-integer or out of range.
        ConfigError: invalid num_classes, spacing, tolerance or class_names.
    """
    pred_t = _as_label_map(pred, "prediction")
    target_t = _as_label_map(target, "target")
    spacing_t = _check_inputs(pred_t, target_t, num_classes, spacing, nsd_tolerance_mm)
    names = _resolve_class_names(int(num_classes), class_names)
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(pred_t.shape, spacing_t)))

    result: dict[str, dict[str, float]] = {metric: {} for metric in METRIC_NAMES}
    both_present: list[int] = []
    for c, name in names.items():
        in_pred, in_target = bool(torch.any(pred_t == c)), bool(torch.any(target_t == c))
        if in_pred and in_target:
            both_present.append(c)
        elif in_pred or in_target:  # exactly one empty: worst finite scores
            result["dice"][name], result["nsd"][name], result["hd95"][name] = 0.0, 0.0, diagonal
        else:  # both empty: perfect agreement
            result["dice"][name], result["nsd"][name], result["hd95"][name] = 1.0, 1.0, 0.0

    if both_present:
        dice, hd95, nsd = _monai_metrics(pred_t, target_t, both_present, spacing_t, float(nsd_tolerance_mm),
                                         dice_only)
        for k, c in enumerate(both_present):
            result["dice"][names[c]] = _finite(dice[k], 0.0)
            if not dice_only:
                result["hd95"][names[c]] = min(_finite(hd95[k], diagonal), diagonal)
                result["nsd"][names[c]] = _finite(nsd[k], 0.0)

    metrics = ("dice",) if dice_only else METRIC_NAMES
    ordered = {metric: {names[c]: result[metric][names[c]] for c in names} for metric in metrics}
    means = {f"mean_{metric}": float(np.mean(list(ordered[metric].values()))) for metric in metrics}
    return {**ordered, **means}


def _describe(values: Sequence[float]) -> dict[str, float]:
    """Mean, population std (ddof=0) and median of a non-empty list of floats."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array))}


def summarize_metrics(per_case: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean/std (ddof=0)/median over N cases of each ``compute_case_metrics`` output, overall and per class.

    Args:
        per_case: N dicts as returned by ``compute_case_metrics`` (same class names in every case).

    Returns:
        ``{"n_cases": N, "mean_dice": {"mean", "std", "median"}, "mean_hd95": {...}, "mean_nsd": {...},
        "dice": {name: {"mean", "std", "median"}}, "hd95": {...}, "nsd": {...}}``.

    Raises:
        DataError: the list is empty, a case lacks a metric, or class names differ between cases.
    """
    if len(per_case) == 0:
        raise DataError("summarize_metrics got no cases.", fix="pass at least one compute_case_metrics result")
    required = [*METRIC_NAMES, *(f"mean_{m}" for m in METRIC_NAMES)]
    reference = {m: list(per_case[0].get(m, {})) for m in METRIC_NAMES}
    for i, case in enumerate(per_case):
        missing = [key for key in required if key not in case]
        if missing:
            raise DataError(f"case {i} lacks metrics {missing}; expected the keys of compute_case_metrics().")
        for metric in METRIC_NAMES:
            if list(case[metric]) != reference[metric]:
                raise DataError(
                    f"case {i} has {metric} classes {list(case[metric])}; case 0 has {reference[metric]}.",
                    fix="compute every case with the same num_classes and class_names",
                )

    summary: dict[str, Any] = {"n_cases": len(per_case)}
    for metric in METRIC_NAMES:
        summary[f"mean_{metric}"] = _describe([case[f"mean_{metric}"] for case in per_case])
    for metric in METRIC_NAMES:
        summary[metric] = {name: _describe([case[metric][name] for case in per_case]) for name in reference[metric]}
    return summary
