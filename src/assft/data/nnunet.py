"""nnU-Net v2's own preprocessing and return to the original grid, for checkpoints imported from an nnU-Net model.

Nothing here re-implements nnU-Net: a case is read and preprocessed by the configuration's preprocessor
(`DefaultPreprocessor.run_case`: its reader, transpose, crop to non-zero, per-channel normalisation with the plans'
foreground intensity properties, resampling to the configuration spacing), and probabilities go back with nnU-Net's
`convert_predicted_logits_to_segmentation_with_correct_shape` (resample the logits, softmax, un-crop, un-transpose),
exactly as `nnUNetPredictor` does. The one thing added is the axis order: nnU-Net's readers return arrays in
SimpleITK's (z, y, x) order, assft's nibabel reader in (x, y, z), so arrays are reversed on the way in and out.

nnunetv2 is the optional extra `assft[nnunet]`, imported only when such a checkpoint is used.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from assft.config import NnunetPreprocess
from assft.data.cases import Case, NnunetGrid
from assft.errors import ConfigError, DataError

# nnU-Net readers whose arrays are the file's voxel grid with the axes reversed (no reorientation): the reversal is
# undone exactly. NibabelIOWithReorient / SimpleITKIOWithReorient reorient to RAS first, which is not undone here.
GRID_READERS = ("SimpleITKIO", "NibabelIO")
# the grid record nnU-Net's predictor needs to return a prediction to the original grid
GRID_KEYS = ("spacing", "shape_before_cropping", "bbox_used_for_cropping", "shape_after_cropping_and_before_resampling")


def install_hint() -> str:
    """The pip line that installs the extra and keeps the installed torch build."""
    return f'pip install "assft[nnunet]" "torch=={torch.__version__.split("+")[0]}"'


def require_nnunetv2() -> None:
    """Raise a ConfigError naming the extra when nnunetv2 (and dynamic-network-architectures) is not installed."""
    try:
        import dynamic_network_architectures  # noqa: F401
        import nnunetv2  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"nnU-Net v2 models need the optional extra assft[nnunet] ({exc.name} is not installed).",
                          fix=f"{install_hint()} (the torch pin keeps pip from replacing your torch build)") from exc


@lru_cache(maxsize=8)
def _managers(description_json: str) -> tuple[Any, Any, Any, dict]:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    description = NnunetPreprocess.model_validate_json(description_json)
    plans = PlansManager(description.plans)
    configuration = plans.get_configuration(description.configuration)
    return plans, configuration, plans.get_label_manager(description.dataset_json), description.dataset_json


def managers(description: NnunetPreprocess) -> tuple[Any, Any, Any, dict]:
    """nnU-Net's PlansManager, ConfigurationManager and LabelManager for the description, and its dataset.json."""
    require_nnunetv2()
    return _managers(description.model_dump_json())


def load_nnunet_case(case: Case, description: NnunetPreprocess, *, with_label: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None, NnunetGrid, tuple[int, int, int]]:
    """Preprocess one case with nnU-Net's own preprocessor -> (image (C, ...), label or None, grid, original shape).

    The label (preprocessed with the image, nnU-Net's -1 outside the non-zero mask set to background) lies on the
    image's preprocessed grid; the original shape is in assft's (x, y, z) axis order.
    """
    plans, configuration, _, dataset_json = managers(description)
    if plans.plans.get("image_reader_writer", "SimpleITKIO") not in GRID_READERS:
        raise ConfigError(f"the plans read images with {plans.plans.get('image_reader_writer')}, which reorients "
                          "them; assft returns predictions to the file's own grid only for "
                          f"{' / '.join(GRID_READERS)}.", fix="use a model planned with SimpleITKIO or NibabelIO")
    label_path = str(case.label_path) if with_label and case.label_path is not None else None
    preprocessor = configuration.preprocessor_class(verbose=False)
    try:
        data, seg, properties = preprocessor.run_case([str(p) for p in case.image_paths], label_path, plans,
                                                      configuration, dataset_json)
    except (RuntimeError, ValueError, AssertionError, OSError) as exc:  # nnU-Net's reader: shape/geometry mismatches
        raise DataError(f"nnU-Net's preprocessing failed ({type(exc).__name__}: {str(exc)[:200]}).",
                        path=case.image_path, fix="check the case with `assft data check`") from exc
    if not np.isfinite(data).all():
        raise DataError("the preprocessed image has NaN/Inf voxels.", path=case.image_path,
                        fix="replace them (e.g. with 0) or remove the case; `assft data check` lists all")
    label = np.maximum(seg[0], 0).astype(np.int64) if label_path is not None else None
    grid = NnunetGrid({k: properties[k] for k in GRID_KEYS}, description)
    read_shape = [properties["shape_before_cropping"][i] for i in plans.transpose_backward]
    original_shape = tuple(int(s) for s in reversed(read_shape))
    return np.ascontiguousarray(data, dtype=np.float32), label, grid, original_shape  # type: ignore[return-value]


def restore_nnunet(probs: torch.Tensor, grid: NnunetGrid, *, probabilities: bool = True) -> torch.Tensor:
    """Probabilities (C, ...) on the preprocessed grid -> (C, x, y, z) on the case's original grid, as nnU-Net's
    predictor returns them (its logits resampled, softmax, un-cropped with background 1 outside, un-transposed).

    With `probabilities=False` the maps (e.g. an uncertainty map) take the same way without the softmax: resampled
    by the configuration's resampling function, 0 outside the crop, un-transposed.

    nnU-Net resamples its fp16 logits; the engine hands them over as `probs.nnunet_logits` (then the result equals
    nnU-Net's to float rounding). Without them (a tensor derived from the engine's output), log-probabilities stand in:
    softmax ignores the per-voxel shift, so the result differs only by nnU-Net's fp16 rounding of resampled logits.
    """
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    plans, configuration, labels, _ = managers(grid.description)
    if not probabilities:
        return _restore_nnunet_maps(probs, grid, plans, configuration)
    logits = getattr(probs, "nnunet_logits", None)
    if logits is None:
        logits = torch.log(probs.float().clamp_min(torch.finfo(torch.float32).tiny))
    properties = {k: (list(v) if isinstance(v, tuple) else v) for k, v in grid.properties.items()}
    _, restored = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits.cpu(), plans, configuration, labels, properties, return_probabilities=True,
        num_threads_torch=torch.get_num_threads())
    restored = np.asarray(restored, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(restored.transpose(0, *range(restored.ndim - 1, 0, -1))))


def _restore_nnunet_maps(maps: torch.Tensor, grid: NnunetGrid, plans: Any, configuration: Any) -> torch.Tensor:
    """The steps of nnU-Net's `convert_predicted_logits_to_segmentation_with_correct_shape` without its softmax
    (nnU-Net has no function for non-probability maps): its resampling function, un-crop (0 outside), un-transpose."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    properties = grid.properties
    spacing = [properties["spacing"][i] for i in plans.transpose_forward]
    current = configuration.spacing if len(configuration.spacing) == len(
        properties["shape_after_cropping_and_before_resampling"]) else [spacing[0], *configuration.spacing]
    resampled = configuration.resampling_fn_probabilities(maps.float().cpu(), list(
        properties["shape_after_cropping_and_before_resampling"]), current, spacing)
    resampled = torch.as_tensor(np.asarray(resampled), dtype=torch.float32)
    full = torch.zeros((resampled.shape[0], *properties["shape_before_cropping"]), dtype=torch.float32)
    full = insert_crop_into_image(full, resampled, [list(b) for b in properties["bbox_used_for_cropping"]])
    out = np.asarray(full).transpose([0] + [i + 1 for i in plans.transpose_backward])
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, *range(out.ndim - 1, 0, -1))))
