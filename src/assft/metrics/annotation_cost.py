"""What a label map costs an annotator: foreground slices, foreground voxels and connected structures.

Annotators draw slice by slice and outline each structure, so a volume's cost is not one unit: it grows with the
slices that contain foreground and with the structures in them. Definitions (docs/benchmarks.md, "Annotation cost"):

- **acquisition axis**: the axis with the largest voxel spacing (the slice direction of a thick-slice scan); on a
  tie the *last* tied axis, which is the slice axis of the usual NIfTI (x, y, z) storage. Isotropic volumes (the
  1 mm hippocampus data) therefore use the last axis.
- **foreground slices**: the slices along an axis with at least one voxel of a label > 0; reported along the
  acquisition axis and as the minimum over the axes (an annotator free to choose the orientation pays that).
- **structures**: connected components per class (label value), summed over the classes, with 26-connectivity
  (faces, edges and corners). We count with 26 rather than 6 because one outline covers voxels that touch only
  along an edge or a corner: a thin oblique structure stored on a 1 mm grid becomes a diagonal staircase, which
  6-connectivity would split into many pieces nobody draws separately. 26 gives the fewest, most conservative count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assft.errors import DataError

__all__ = ["AnnotationCost", "acquisition_axis", "annotation_cost", "connected_structures", "foreground_slices",
           "label_file_cost"]

COST_FIELDS = ("fg_slices", "fg_slices_min", "fg_voxels", "structures")  # the numbers a ledger records per pick


@dataclass(frozen=True)
class AnnotationCost:
    """The annotation cost of one label map (see the module docstring for each definition)."""

    acquisition_axis: int
    fg_slices: int  # foreground slices along the acquisition axis
    fg_slices_min: int  # the minimum of foreground slices over the axes
    fg_slices_per_axis: tuple[int, ...]
    fg_voxels: int
    structures: int  # connected components, summed over the classes
    structures_per_class: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (class keys as strings, tuples as lists)."""
        out = asdict(self)
        out["fg_slices_per_axis"] = list(self.fg_slices_per_axis)
        out["structures_per_class"] = {str(k): v for k, v in self.structures_per_class.items()}
        return out


def acquisition_axis(spacing: Sequence[float]) -> int:
    """The axis with the largest spacing; ties go to the last tied axis (e.g. (1, 1, 1) -> 2, (3, 1, 3) -> 2)."""
    values = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataError(f"voxel spacing must be positive finite numbers, one per axis; got {list(spacing)}.",
                        fix="check the label file's header (pixdim)")
    return int(np.flatnonzero(values == values.max())[-1])


def foreground_slices(label_map: np.ndarray, axis: int) -> int:
    """Number of slices along `axis` with at least one voxel of a label > 0."""
    foreground = np.asarray(label_map) > 0
    others = tuple(a for a in range(foreground.ndim) if a != axis)
    return int(np.count_nonzero(foreground.any(axis=others)))


def connected_structures(label_map: np.ndarray) -> dict[int, int]:
    """{class: connected components of that class} with full (26 in 3D) connectivity; background (0) left out."""
    from scipy import ndimage

    labels = np.asarray(label_map)
    structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)  # faces, edges and corners
    out = {}
    for value in np.unique(labels):
        if value <= 0:
            continue
        _, count = ndimage.label(labels == value, structure=structure)
        out[int(value)] = int(count)
    return out


def annotation_cost(label_map: np.ndarray, spacing: Sequence[float]) -> AnnotationCost:
    """The annotation cost of `label_map` (D, H, W) int with voxel `spacing` (one per axis)."""
    labels = np.asarray(label_map)
    if labels.ndim != len(spacing):
        raise DataError(f"a {labels.ndim}-D label map needs {labels.ndim} spacings; got {list(spacing)}.",
                        fix="pass the spacing of the label map's own axes")
    axis = acquisition_axis(spacing)
    per_axis = tuple(foreground_slices(labels, a) for a in range(labels.ndim))
    classes = connected_structures(labels)
    return AnnotationCost(acquisition_axis=axis, fg_slices=per_axis[axis], fg_slices_min=min(per_axis),
                          fg_slices_per_axis=per_axis, fg_voxels=int(np.count_nonzero(labels > 0)),
                          structures=sum(classes.values()), structures_per_class=classes)


def label_file_cost(path: str | Path) -> AnnotationCost:
    """The annotation cost of a label file (NIfTI), in its stored orientation and spacing."""
    from assft.data.io import read_header, read_volume

    _, _, zooms = read_header(path)
    labels, _ = read_volume(path, dtype=np.int64)
    if labels.ndim > 3 and all(n == 1 for n in labels.shape[3:]):  # a trailing singleton channel axis
        labels = labels.reshape(labels.shape[:3])
    return annotation_cost(labels, zooms[:3])
