"""Oracles: who provides the labels of queried volumes (the ground truth in simulation, an expert's folder for real)."""

from __future__ import annotations

import shutil
from pathlib import Path

from assft.data.cases import DatasetSpec
from assft.data.checks import check_label_against_image
from assft.data.io import read_header
from assft.errors import CampaignError


def validate_label_folder(labels_dir: str | Path, pool: DatasetSpec, case_ids: list[str]) -> dict[str, Path]:
    """Check that `labels_dir/ID.nii.gz` exists and fits its image for every queried case; raise listing all problems."""
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise CampaignError("label folder not found.", path=labels_dir, fix="pass the folder the annotator filled")
    allowed = set(pool.labels) if pool.labels else set(range(256))
    problems: list[str] = []
    found: dict[str, Path] = {}
    for case_id in case_ids:
        candidates = [labels_dir / f"{case_id}{ext}" for ext in (".nii.gz", ".nii")]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            problems.append(f"{candidates[0]}: missing label for queried case {case_id}.")
            continue
        shape, affine, _ = read_header(pool.get(case_id).image_path)
        issues, _ = check_label_against_image(case_id, path, shape, affine, allowed)
        problems.extend(str(p) for p in issues)
        found[case_id] = path
    if problems:
        listing = "\n  ".join(problems)
        raise CampaignError(f"{len(problems)} problem(s) with the imported labels; nothing was imported:\n  {listing}",
                            path=labels_dir, fix="correct or add the listed files and run import-labels again")
    return found


def copy_labels(found: dict[str, Path], destination: str | Path) -> dict[str, Path]:
    """Copy validated labels into the campaign (temp name + rename per file, so a crash leaves no partial file)."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    out = {}
    for case_id, path in found.items():
        target = destination / f"{case_id}.nii.gz" if path.name.endswith(".gz") else destination / f"{case_id}.nii"
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        out[case_id] = target
    return out


def annotation_costs(labels: dict[str, Path]) -> dict[str, dict]:
    """{case_id: the annotation cost of its label file} (`metrics.annotation_cost`), as the ledger records it."""
    from assft.metrics.annotation_cost import label_file_cost

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
