"""Dataset validation: collect every problem (file, what was found, the fix) into one report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assft.config import PreprocessConfig
from assft.data.cases import DatasetSpec
from assft.data.io import read_header, read_volume
from assft.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One validation failure."""

    case_id: str
    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} Fix: {self.fix}"


@dataclass
class DataReport:
    """What `check_dataset` found: counts, shapes, spacings, label voxel counts, and problems."""

    root: str
    layout: str
    num_cases: int
    num_labeled: int
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    spacings: list[tuple[float, ...]] = field(default_factory=list)
    label_counts: dict[int, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def raise_if_problems(self) -> None:
        """Raise one DataError listing every problem."""
        if self.problems:
            lines = "\n  ".join(str(p) for p in self.problems[:20])
            more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            raise DataError(f"{len(self.problems)} problem(s) in the dataset:\n  {lines}{more}", path=self.root)


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(D, H, W) of a 3D volume or of a (D, H, W, 1) one; None for anything else (2D, 4D with channels, ...)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return shape if len(shape) == 3 else None  # type: ignore[return-value]


def check_label_values(label: np.ndarray, allowed: set[int] | dict[int, str], path: str | Path | None) -> None:
    """DataError when an integer label map holds a value that is not a class of the label map (before training)."""
    found = {int(v) for v in np.unique(label)}
    unknown = sorted(found - set(allowed))
    if unknown:
        raise DataError(f"label values {unknown} are not classes of the label map {sorted(allowed)}.", path=path,
                        fix="fix the label, or add the classes to dataset.json 'labels' (`assft data check` lists all)")


def check_label_against_image(
    case_id: str,
    label_path: Path,
    image_shape: tuple[int, ...],
    image_affine: np.ndarray,
    allowed: set[int],
    *,
    affine_tol: float = 1e-3,
) -> tuple[list[Problem], Counter]:
    """Validate one label file against its image: readable, same shape and affine, finite, allowed integer values."""
    problems: list[Problem] = []
    counts: Counter = Counter()
    lp = str(label_path)
    try:
        label, affine = read_volume(label_path, dtype=np.float64)
    except DataError as exc:
        return [Problem(case_id, lp, exc.message, exc.fix or "")], counts
    label_grid, image_grid = spatial_shape(label.shape), spatial_shape(image_shape)
    if label_grid is None:  # e.g. (D, H, W, 2): comparing only shape[:3] would let it through
        problems.append(Problem(case_id, lp, f"label must be one 3D volume, got shape {tuple(label.shape)}.",
                                "save the label as a single (D, H, W) integer map"))
        return problems, counts
    from assft.data.geometry import grid_difference, on_reference_grid

    # One rule with training and import: the same grid in world space, in any storage orientation (reoriented).
    difference = grid_difference(label_grid, affine, image_grid, image_affine, affine_tol)
    if difference is not None:
        if label_grid != image_grid and sorted(label_grid) != sorted(image_grid):
            problems.append(Problem(case_id, lp, f"label shape {tuple(label.shape)} != image shape "
                                    f"{tuple(image_shape)}.", "re-export the label on the image grid"))
        else:
            problems.append(Problem(case_id, lp, f"label is not on the image's grid in world space: {difference}.",
                                    "export the label on the image's grid (same shape, spacing and position; "
                                    "another axis order or direction is fine)"))
        return problems, counts
    label, _ = on_reference_grid(label.reshape(label_grid), affine, image_grid, image_affine, path=lp, what="label")
    if not np.isfinite(label).all():
        problems.append(Problem(case_id, lp, "label contains NaN/Inf voxels.", "re-export the label as integers"))
        return problems, counts
    values, freq = np.unique(label, return_counts=True)
    if not np.all(values == np.round(values)):
        problems.append(Problem(case_id, lp, "label contains non-integer values.", "re-export the label as integers"))
        return problems, counts
    counts.update({int(v): int(n) for v, n in zip(values, freq)})
    unknown = sorted(int(v) for v in values if int(v) not in allowed)
    if unknown:
        problems.append(Problem(case_id, lp, f"label values {unknown} are not in dataset.json labels {sorted(allowed)}.",
                                "fix the label or add the classes to dataset.json"))
    return problems, counts


def check_dataset(spec: DatasetSpec, *, read_data: bool = True, affine_tol: float = 1e-3) -> DataReport:
    """Validate every case of `spec`; returns a DataReport (call `raise_if_problems()` to fail on problems)."""
    report = DataReport(str(spec.root), spec.layout, len(spec.cases),
                        sum(c.label_path is not None for c in spec.cases))
    allowed = set(spec.labels) if spec.labels else None
    totals: Counter = Counter()
    for case in spec.cases:
        problems = report.problems
        missing = [p for p in case.image_paths if not p.exists()]
        if missing:
            problems.append(Problem(case.case_id, str(missing[0]), "listed image file is missing.",
                                    "restore the file or remove the case from dataset.json"))
            continue
        try:
            if read_data:
                image, affine = read_volume(case.image_path)
                shape, spacing = image.shape, tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(0)))
                if not np.isfinite(image).all():
                    n_bad = int((~np.isfinite(image)).sum())
                    problems.append(Problem(case.case_id, str(case.image_path), f"image has {n_bad} NaN/Inf voxels.",
                                            "replace them (e.g. with 0) or remove the case"))
            else:
                shape, affine, spacing = read_header(case.image_path)
        except DataError as exc:
            problems.append(Problem(case.case_id, str(case.image_path), exc.message, exc.fix or ""))
            continue
        grid = spatial_shape(shape)
        if grid is None:  # 2D, or 4D with channels: nothing downstream can use it
            problems.append(Problem(case.case_id, str(case.image_path), f"expected a 3D volume, got shape {tuple(shape)}.",
                                    "save one 3D volume per file (several channels: one file each, _0000, _0001, ...)"))
            continue
        report.shapes.append(grid)
        report.spacings.append(tuple(round(s, 4) for s in spacing[:3]))
        for extra_channel in case.image_paths[1:]:
            try:
                other_shape, _, _ = read_header(extra_channel)
            except DataError as exc:
                problems.append(Problem(case.case_id, str(extra_channel), exc.message, exc.fix or ""))
                continue
            if spatial_shape(other_shape) != grid:
                problems.append(Problem(case.case_id, str(extra_channel),
                                        f"channel shape {other_shape} != first channel {tuple(shape)}.",
                                        "resample all channels to one grid"))
        if case.label_path is None:
            continue
        if not case.label_path.exists():
            problems.append(Problem(case.case_id, str(case.label_path), "listed label file is missing.",
                                    "add the label or remove the 'label' entry"))
            continue
        if read_data:
            found, counts = check_label_against_image(case.case_id, case.label_path, grid, affine,
                                                      allowed if allowed is not None else set(range(256)),
                                                      affine_tol=affine_tol)
            problems.extend(found)
            totals.update(counts)
    report.label_counts = dict(sorted(totals.items()))
    return report


@dataclass(frozen=True)
class GridGroup:
    """Volumes sharing one orientation and spacing, and what assft does to bring them to a model's grid."""

    orientation: str
    spacing: tuple[float, float, float]
    case_ids: tuple[str, ...]
    changes: tuple[str, ...]  # empty: the volumes already lie on the grid the model expects


def model_grid_report(spec: DatasetSpec, preprocess: PreprocessConfig) -> list[GridGroup]:
    """Group the volumes by (orientation, spacing) from their headers and say how each group reaches the model's grid."""
    from assft.data.preprocess import grid_changes, orientation_of

    groups: dict[tuple[str, tuple[float, ...]], list[str]] = {}
    affines: dict[tuple[str, tuple[float, ...]], np.ndarray] = {}
    for case in spec.cases:
        _, affine, _ = read_header(case.image_path)
        spacing = tuple(round(float(s), 4) for s in np.sqrt((affine[:3, :3] ** 2).sum(0)))
        key = (orientation_of(affine), spacing)
        groups.setdefault(key, []).append(case.case_id)
        affines.setdefault(key, affine)
    return [GridGroup(o, s, tuple(ids), tuple(grid_changes(affines[(o, s)], preprocess)))  # type: ignore[arg-type]
            for (o, s), ids in sorted(groups.items())]
