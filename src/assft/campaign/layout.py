"""A campaign folder's layout and the files the campaign writes into a round (the only writer of rounds/rNNN/).

    campaign.yaml, ledger.json            the recipe and the record (assft.campaign.config, .ledger)
    round0/adapted.pt                     the pool-adapted start model (round 0, no labels)
    rounds/rNNN/query/selection.csv|json  the round's scores and picks (figures/ with `figures: true`)
    rounds/rNNN/to_annotate.csv, to_annotate/   what the annotator labels: image links, and (assft.campaign.
                                          pre_annotations) pre_annotations/ID.nii.gz to correct, why/NN_ID.png
    rounds/rNNN/finetune/                 the round's fine-tuned checkpoint and pseudo-label table
    labels/ID.nii.gz                      the imported annotations
    theta0_moments.json, volumes/         caches: θ0's norm moments per volume, the preprocessed volumes
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from assft.data.cases import DatasetSpec
from assft.utils.atomic import atomic_write

if TYPE_CHECKING:
    from assft.query.result import QueryResult

ADAPTED_CHECKPOINT = Path("round0") / "adapted.pt"
THETA0_CACHE = "theta0_moments.json"  # θ0's norm moments per pool volume: KD costs one θ0 pass per volume
VOLUME_CACHE = "volumes"  # preprocessed pool/test volumes, memory-mapped (assft.data.volume_cache)
LABELS_DIR = "labels"
QUERY_DIR = "query"
TO_ANNOTATE = "to_annotate"
QUERY_FILES = (f"{QUERY_DIR}/selection.csv", f"{QUERY_DIR}/selection.json")  # relative to the round's folder


def round_dir(campaign_dir: str | Path, index: int) -> Path:
    """Folder of round `index`: rounds/r001, rounds/r002, ..."""
    return Path(campaign_dir) / "rounds" / f"r{index:03d}"


def finetune_dir(campaign_dir: str | Path, index: int) -> Path:
    """Where round `index`'s fine-tuning writes its checkpoint and pseudo-label table."""
    return round_dir(campaign_dir, index) / "finetune"


def label_file(campaign_dir: str | Path, case_id: str) -> Path:
    """The imported annotation of `case_id` (ID.nii.gz, or ID.nii when that is what arrived)."""
    label = Path(campaign_dir) / LABELS_DIR / f"{case_id}.nii.gz"
    return label if label.exists() else label.with_suffix("")


def relative_to(path: str | Path, root: Path) -> str:
    """`path` relative to `root` when it lies inside it (how the ledger records paths), else as given."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def write_query(folder: Path, result: QueryResult, *, figures: bool = False) -> list[str]:
    """selection.csv and selection.json in folder/query/ (and with `figures` a PNG per pick); the files written,
    relative to `folder`."""
    # Imported here: the layout's paths are read by `campaign status` and the CLI's checks, which must not wait for
    # the query code (torch, MONAI); a writer of query files has loaded it anyway.
    from assft.query.result import FIGURES_DIR, save_query_result, write_result_figures

    save_query_result(result, folder / QUERY_DIR)
    if figures:
        write_result_figures(result, folder / QUERY_DIR / FIGURES_DIR, result.class_names)
    return list(QUERY_FILES)


def write_to_annotate(folder: Path, pool: DatasetSpec, case_ids: list[str]) -> None:
    """to_annotate.csv plus links (or copies) of the images in to_annotate/ for the annotator."""
    images = folder / TO_ANNOTATE
    images.mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        source = pool.get(case_id).image_path
        target = images / source.name
        if not target.exists():
            try:
                os.symlink(source.resolve(), target)
            except OSError:  # filesystems without symlinks
                shutil.copyfile(source, target)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["case_id", "image", "expected_label_file"])
            for case_id in case_ids:
                writer.writerow([case_id, str(pool.get(case_id).image_path), f"{case_id}.nii.gz"])

    atomic_write(folder / "to_annotate.csv", write)
