"""Write a shifted copy of a dataset: every image through its domain's plan, labels checked and rewritten unchanged,
and the sampled plan of every case (shift type, severity, coefficients, site) in dataset.json's `assft_provenance`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assft.data.geometry import read_label_on_grid
from assft.data.io import load_json, read_volume, write_label_map, write_volume
from assft.data.layout import load_dataset
from assft.domains.plans import plan_case, resolve_severity
from assft.domains.shifts import apply_shift
from assft.errors import DataError
from assft.utils.atomic import atomic_folder, atomic_write_json
from assft.utils.paths import check_generated_folder, check_output_guard, check_plain_name, mark_generated_folder

__all__ = ["apply_domain_to_dataset"]

# nnU-Net v2's dataset.json keys; the copy is written in the MSD layout, so they are translated, not copied
_NNUNET_KEYS = ("channel_names", "file_ending", "labels", "overwrite_image_reader_writer")


def apply_domain_to_dataset(
    in_dir: str | Path, out_dir: str | Path, domain: str, seed: int, severity: float | None = None
) -> Path:
    """Write dataset `in_dir` (MSD, nnU-Net v2 or a folder of images) shifted into `domain` to `out_dir` in the MSD
    layout (labels read, checked on their image grid and rewritten unchanged); returns out_dir. All or nothing:
    the copy is built beside `out_dir` and moved into place when complete. Cases are read through `assft.data`."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    sev = resolve_severity(domain, severity)
    check_plain_name(domain, "domain")
    check_output_guard(out_dir, {"dataset": in_dir}, "out_dir")
    spec = load_dataset(in_dir)
    check_generated_folder(out_dir, "shifted dataset", "out_dir")
    with atomic_folder(out_dir) as staging:  # all cases or none: a bad label midway leaves no partial copy
        mark_generated_folder(staging, "shifted dataset")
        _write_shifted(spec, in_dir, staging, domain, seed, sev)
    return out_dir


def _msd_meta(spec: Any, in_dir: Path) -> dict[str, Any]:
    """The input's dataset.json fields worth keeping (name, licence, reference, ...) in the MSD form."""
    raw = load_json(in_dir / "dataset.json") if (in_dir / "dataset.json").is_file() else {}
    meta = {k: v for k, v in raw.items() if k not in ("training", "test", "numTraining", "numTest")}
    if spec.layout != "msd":
        meta = {k: v for k, v in meta.items() if k not in _NNUNET_KEYS}
        meta["labels"] = {str(i): name for i, name in sorted(spec.labels.items())}
        meta.setdefault("modality", {"0": spec.modality})
    return meta


def _write_shifted(spec: Any, in_dir: Path, out_dir: Path, domain: str, seed: int, sev: float) -> None:
    """Every case of `spec` shifted into `domain`, its label checked and rewritten, and dataset.json, in `out_dir`."""
    training, cases = [], {}
    for case in spec.cases:
        if len(case.image_paths) != 1:
            raise DataError(f"case {case.case_id} has {len(case.image_paths)} channels; domains shift one.",
                            path=case.image_path, fix="shift a single-channel dataset")
        image, affine = read_volume(case.image_path)
        shifted = apply_shift(image, domain, case_id=case.case_id, seed=seed, severity=sev)
        write_volume(out_dir / "imagesTr" / f"{case.case_id}.nii.gz", shifted, affine)
        entry = {"image": f"./imagesTr/{case.case_id}.nii.gz"}
        if case.label_path is not None:
            # Read and checked as a label on its image's grid, never copied blind: a link to a system file or a
            # label off its image is an error, not part of the new dataset.
            classes = spec.labels or None
            label, _ = read_label_on_grid(case.label_path, image.shape, affine, classes,
                                          source="the dataset's classes")
            write_label_map(out_dir / "labelsTr" / f"{case.case_id}.nii.gz", label, affine)
            entry["label"] = f"./labelsTr/{case.case_id}.nii.gz"
        training.append(entry)
        cases[case.case_id] = plan_case(domain, case.case_id, seed, sev)[0].to_dict()  # what apply_shift applied
    meta = _msd_meta(spec, in_dir)
    meta.update(name=f"{meta.get('name', in_dir.name)}_{domain}", numTraining=len(training), numTest=0,
                training=training, test=[],
                assft_provenance={"domain": domain, "seed": seed, "severity": sev, "source": str(in_dir),
                                  "cases": cases})
    atomic_write_json(out_dir / "dataset.json", meta)  # written last: its presence marks a complete copy
