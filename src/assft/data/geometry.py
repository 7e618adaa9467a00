"""Where two volumes meet (a label and its image, a prediction and its reference): the one grid-and-classes check.

Rule: two volumes are compared or combined only on the same grid in world space. A volume that holds the same
grid stored in another axis order or direction (e.g. x-reversed, or RAS vs LPS storage) is reoriented onto the
reference with nibabel's orientation tools, which move no voxel centre in world space; anything else (another
shape, spacing, origin or rotation) is refused with a message naming the difference. No resampling happens here:
interpolating a label map silently changes what was annotated.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from assft.data.io import read_volume
from assft.errors import DataError

__all__ = ["AFFINE_TOL", "check_classes", "grid_difference", "label_image", "on_reference_grid", "read_label_on_grid"]

AFFINE_TOL = 1e-3  # mm: the same tolerance `assft data check` uses for a label against its image


def _reoriented(array: np.ndarray, affine: np.ndarray, reference_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`array` flipped/transposed into the reference's axis order, and the affine that keeps it in place."""
    transform = orientations.ornt_transform(orientations.io_orientation(affine),
                                            orientations.io_orientation(reference_affine))
    moved = orientations.apply_orientation(array, transform)
    return moved, affine @ orientations.inv_ornt_aff(transform, array.shape[:3])


def grid_difference(shape: tuple[int, ...], affine: np.ndarray, reference_shape: tuple[int, ...],
                    reference_affine: np.ndarray, tol: float = AFFINE_TOL) -> str | None:
    """None when the grids agree in world space (after reorientation), else what differs, in words and mm."""
    if np.allclose(affine, reference_affine, atol=tol, rtol=0) and tuple(shape[:3]) == tuple(reference_shape[:3]):
        return None
    dummy = np.zeros(tuple(shape[:3]), dtype=np.uint8)
    moved, moved_affine = _reoriented(dummy, np.asarray(affine, float), np.asarray(reference_affine, float))
    if moved.shape == tuple(reference_shape[:3]) and np.allclose(moved_affine, reference_affine, atol=tol, rtol=0):
        return None
    spacing = np.sqrt((np.asarray(moved_affine)[:3, :3] ** 2).sum(axis=0))
    ref_spacing = np.sqrt((np.asarray(reference_affine)[:3, :3] ** 2).sum(axis=0))
    if moved.shape != tuple(reference_shape[:3]):
        return f"shape {tuple(moved.shape)} vs {tuple(reference_shape[:3])} (in the reference's axis order)"
    if not np.allclose(spacing, ref_spacing, atol=tol):
        return (f"voxel spacing {tuple(round(float(s), 3) for s in spacing)} mm vs "
                f"{tuple(round(float(s), 3) for s in ref_spacing)} mm")
    offset = float(np.linalg.norm(moved_affine[:3, 3] - reference_affine[:3, 3]))
    if offset > tol:
        return f"origin {offset:.1f} mm away from the reference's (the volumes do not overlap in the same place)"
    return f"orientation (direction cosines differ by up to {np.abs(moved_affine - reference_affine).max():.3g})"


def on_reference_grid(array: np.ndarray, affine: np.ndarray, reference_shape: tuple[int, ...],
                      reference_affine: np.ndarray, *, path: str | Path | None, what: str,
                      reference: str = "the image", tol: float = AFFINE_TOL) -> tuple[np.ndarray, bool]:
    """`array` on the reference grid -> (array, reoriented?); DataError naming the difference when it is not the
    same grid in world space. A trailing singleton channel (D, H, W, 1) is accepted and dropped."""
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(f"{what} must be one 3D volume, got shape {tuple(array.shape)}.", path=path,
                        fix=f"save the {what} as a single (D, H, W) map")
    affine, reference_affine = np.asarray(affine, float), np.asarray(reference_affine, float)
    if array.shape == tuple(reference_shape[:3]) and np.allclose(affine, reference_affine, atol=tol, rtol=0):
        return array, False
    difference = grid_difference(array.shape, affine, reference_shape, reference_affine, tol)
    if difference is not None:
        raise DataError(f"{what} is not on the grid of {reference} in world space: {difference}.", path=path,
                        fix=f"export the {what} on the grid of {reference} (same shape, spacing and position; "
                            "another axis order or direction is fine, it is reoriented)")
    moved, _ = _reoriented(array, affine, reference_affine)
    return np.ascontiguousarray(moved), True


def check_classes(label: np.ndarray, classes: set[int] | dict[int, str], *, path: str | Path | None,
                  what: str = "label", source: str = "the model's classes") -> None:
    """DataError unless `label` holds finite integers that are all in `classes`."""
    if not np.isfinite(label).all():
        raise DataError(f"{what} contains NaN/Inf voxels.", path=path, fix=f"re-export the {what} as integers")
    values = np.unique(label)
    if not np.all(values == np.round(values)):
        raise DataError(f"{what} contains non-integer values.", path=path, fix=f"re-export the {what} as integers")
    unknown = sorted(int(v) for v in values if int(v) not in set(classes))
    if unknown:
        raise DataError(f"{what} values {unknown} are not among {source} {sorted(set(classes))}.", path=path,
                        fix=f"fix the {what}: every voxel must be one of {sorted(set(classes))}")


def read_label_on_grid(path: str | Path, reference_shape: tuple[int, ...], reference_affine: np.ndarray,
                       classes: set[int] | dict[int, str] | None, *, what: str = "label",
                       reference: str = "the image", source: str = "the model's classes") -> tuple[np.ndarray, bool]:
    """Read a label (or prediction) map, put it on the reference grid and check its values -> (int map, reoriented?)."""
    array, affine = read_volume(path, dtype=np.float64)
    array, moved = on_reference_grid(array, affine, reference_shape, reference_affine, path=path, what=what,
                                     reference=reference)
    if classes is not None:
        check_classes(array, classes, path=path, what=what, source=source)
    elif not np.isfinite(array).all():
        raise DataError(f"{what} contains NaN/Inf voxels.", path=path, fix=f"re-export the {what} as integers")
    return array.astype(np.int64), moved


def label_image(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """An integer label map as a NIfTI image (uint8 when the values fit)."""
    dtype = np.uint8 if array.min(initial=0) >= 0 and array.max(initial=0) <= 255 else np.int16
    return nib.Nifti1Image(np.asarray(array).astype(dtype), np.asarray(affine, float))
