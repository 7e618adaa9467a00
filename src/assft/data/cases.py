"""Cases (the unit of identity: a case_id string), the dataset spec that lists them, and a case once preprocessed
(`LoadedCase`, with the grid record that returns a prediction to its original grid)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assft.config import NnunetPreprocess
from assft.errors import DataError


@dataclass(frozen=True)
class Case:
    """One volume: `case_id` (file stem or DICOM series folder name), its image file(s) or series folder (one per channel) and an optional label file."""

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None = None

    @property
    def image_path(self) -> Path:
        """The first (usually only) image channel."""
        return self.image_paths[0]


@dataclass
class DatasetSpec:
    """A parsed dataset folder: layout, label map, cases in a stable order."""

    root: Path
    name: str
    layout: str  # "msd" | "nnunet" | "folder"
    labels: dict[int, str]
    cases: list[Case]
    modality: str = "unknown"
    file_ending: str = ".nii.gz"
    extra: dict = field(default_factory=dict)
    not_read: list[tuple[str, str]] = field(default_factory=list)  # (name, why) of entries of a plain folder skipped

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return max(self.labels) + 1 if self.labels else 0

    @property
    def case_ids(self) -> list[str]:
        """Case ids in dataset order."""
        return [c.case_id for c in self.cases]

    @property
    def has_labels(self) -> bool:
        """True when every case has a label file."""
        return bool(self.cases) and all(c.label_path is not None for c in self.cases)

    def get(self, case_id: str) -> Case:
        """The case with this id (DataError listing a few known ids when absent)."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        known = ", ".join(self.case_ids[:5])
        raise DataError(f"case {case_id!r} is not in this dataset (first cases: {known}).", path=self.root,
                        fix="check the case id or the split file")

    def subset(self, case_ids: list[str] | set[str], *, keep_order_of: str = "dataset") -> DatasetSpec:
        """A copy holding only `case_ids` (unknown ids are an error)."""
        wanted = list(case_ids)
        missing = sorted(set(wanted) - set(self.case_ids))
        if missing:
            raise DataError(f"{len(missing)} case ids not in the dataset: {', '.join(missing[:5])}.", path=self.root,
                            fix="regenerate the split for this dataset")
        if keep_order_of == "dataset":
            keep = set(wanted)
            cases = [c for c in self.cases if c.case_id in keep]
        else:
            by_id = {c.case_id: c for c in self.cases}
            cases = [by_id[c] for c in wanted]
        return DatasetSpec(self.root, self.name, self.layout, dict(self.labels), cases, self.modality,
                           self.file_ending, dict(self.extra), list(self.not_read))

    def without_labels(self) -> DatasetSpec:
        """A copy whose cases carry no label paths (an unlabeled pool)."""
        cases = [Case(c.case_id, c.image_paths, None) for c in self.cases]
        return DatasetSpec(self.root, self.name, self.layout, dict(self.labels), cases, self.modality,
                           self.file_ending, dict(self.extra), list(self.not_read))


@dataclass(frozen=True)
class NnunetGrid:
    """Where a case preprocessed by nnU-Net came from: nnU-Net's grid record and the model's description."""

    properties: dict[str, Any]  # assft.data.nnunet.GRID_KEYS, in nnU-Net's reader axis order
    description: NnunetPreprocess

    def to_json(self) -> dict[str, Any]:
        """The grid record as plain JSON (the volume cache stores it)."""
        return json.loads(json.dumps(self.properties, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


@dataclass
class LoadedCase:
    """A preprocessed case: image (C, D, H, W) float32, label (D, H, W) int64 or None, original grid info.

    `affine`, `original_shape` and `spacing` describe the file's grid; `grid_affine` is the affine of `image` when
    the model's orientation/spacing moved it off that grid (None: `image` lies on the file's grid); `nnunet_grid` is
    set instead when nnU-Net's own preprocessing (scheme "nnunetv2") made `image`.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    original_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    grid_affine: np.ndarray | None = None
    # set for an nnU-Net model's cases (assft.data.nnunet): the record that returns a prediction to the original grid
    nnunet_grid: NnunetGrid | None = None
