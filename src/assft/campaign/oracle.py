"""Oracles: who provides the labels of queried volumes (the ground truth in simulation, an expert's folder for real)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nibabel as nib

from assft.data.cases import DatasetSpec
from assft.data.checks import spatial_shape
from assft.data.geometry import label_image, read_label_on_grid
from assft.data.io import read_header
from assft.errors import CampaignError, ConfigError, DataError
from assft.metrics.annotation_cost import label_file_cost
from assft.utils.paths import check_file_names, confine


def validate_label_folder(labels_dir: str | Path, pool: DatasetSpec, case_ids: list[str],
                          classes: set[int] | dict[int, str] | None = None) -> dict[str, tuple[Path, bool]]:
    """Check that `labels_dir/ID.nii.gz` exists, lies on its image's grid in world space and holds only `classes`
    (the model's; the pool's label map when None) for every queried case; raise listing all problems.

    Returns {case_id: (label file, stored in another orientation?)}: such a label is reoriented when imported.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise CampaignError("label folder not found.", path=labels_dir, fix="pass the folder the annotator filled")
    if classes is None:
        classes = set(pool.labels) if pool.labels else set(range(256))
    problems: list[str] = []
    found: dict[str, tuple[Path, bool]] = {}
    for case_id in case_ids:
        candidates = [labels_dir / f"{case_id}{ext}" for ext in (".nii.gz", ".nii")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            problems.append(f"{candidates[0]}: missing label for queried case {case_id}.")
            continue
        try:  # a case id names a file of this folder; a link out of it is not the annotator's label
            confine(labels_dir, path.name, "label file")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        shape, affine, _ = read_header(pool.get(case_id).image_path)
        try:
            _, moved = read_label_on_grid(path, spatial_shape(shape) or shape, affine, classes,
                                          reference=f"its image {pool.get(case_id).image_path.name}")
        except DataError as exc:
            problems.append(str(exc))
            continue
        found[case_id] = (path, moved)
    if problems:
        listing = "\n  ".join(problems)
        raise CampaignError(f"{len(problems)} problem(s) with the imported labels; nothing was imported:\n  {listing}",
                            path=labels_dir, fix="correct or add the listed files and run import-labels again")
    return found


def copy_labels(found: dict[str, tuple[Path, bool]], destination: str | Path, pool: DatasetSpec) -> dict[str, Path]:
    """Write validated labels into the campaign, all or nothing.

    Every final name is checked against the file system's limit first; the files are then staged under short
    temporary names in a hidden folder beside `destination` and renamed into place only when all are written. A
    label stored in another orientation than its image is written reoriented onto the image's grid; the others
    are copied byte for byte.
    """
    destination = Path(destination)
    names = {case_id: f"{case_id}.nii.gz" if path.name.endswith(".gz") else f"{case_id}.nii"
             for case_id, (path, _) in found.items()}
    check_file_names(destination.parent, names.values(), "label file name")
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=destination.parent))
    try:
        staged = {}
        for index, (case_id, (path, moved)) in enumerate(found.items()):
            tmp = staging / f"{index}{'.nii.gz' if names[case_id].endswith('.gz') else '.nii'}"
            if moved:
                shape, affine, _ = read_header(pool.get(case_id).image_path)
                array, _ = read_label_on_grid(path, spatial_shape(shape) or shape, affine, None)
                nib.save(label_image(array, affine), str(tmp))
            else:
                shutil.copyfile(path, tmp)
            staged[case_id] = tmp
        out = {}
        for case_id, tmp in staged.items():
            target = destination / names[case_id]
            tmp.replace(target)
            out[case_id] = target
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def annotation_costs(labels: dict[str, Path]) -> dict[str, dict]:
    """{case_id: the annotation cost of its label file} (`metrics.annotation_cost`), as the ledger records it."""
    return {case_id: label_file_cost(path).to_dict() for case_id, path in sorted(labels.items())}


class GroundTruthOracle:
    """Simulation: the dataset's own label files play the annotator."""

    def __init__(self, labeled_pool: DatasetSpec) -> None:
        self.pool = labeled_pool

    def annotate(self, case_ids: list[str]) -> dict[str, Path]:
        """Label paths of the queried cases (error if the simulated pool has no label for one)."""
        out = {}
        for case_id in case_ids:
            path = self.pool.get(case_id).label_path
            if path is None or not path.exists():
                raise CampaignError(f"simulation needs a ground-truth label for {case_id}.", path=self.pool.root,
                                    fix="simulate on a labeled pool (labelsTr)")
            out[case_id] = path
        return out
