"""Volume reading (NIfTI through nibabel; NRRD, MetaImage and DICOM series through assft.data.formats) and NIfTI
writing; writes are atomic; read errors name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from assft.data.formats import is_volume_file, read_itk_header, read_itk_volume
from assft.data.limits import check_voxel_count
from assft.errors import DataError
from assft.utils.atomic import atomic_write, atomic_write_json


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii.gz", ".nii"))


def _uses_itk(path: Path) -> bool:
    """NRRD/MetaImage files and DICOM series folders go to SimpleITK; everything else is tried as NIfTI."""
    return path.is_dir() or (is_volume_file(path) and not _is_nifti(path))


def read_volume(path: str | Path, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder) -> (array (D, H, W) or (D, H, W, C) as `dtype`,
    RAS affine (4, 4) float64)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found.", path=path, fix="check the path or the dataset.json entry that lists it")
    if _uses_itk(path):
        return read_itk_volume(path, dtype)
    try:
        img = nib.load(str(path))  # reads the header only
    except Exception as exc:  # nibabel raises many types for corrupt/truncated files
        raise DataError(f"cannot read NIfTI ({type(exc).__name__}: {exc}).", path=path,
                        fix="re-export the file as .nii/.nii.gz or remove the case") from exc
    # A few-MB gzip can expand to gigabytes: trust the header's size only up to the cap.
    check_voxel_count(img.shape, path)
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise DataError(
            f"cannot read NIfTI ({type(exc).__name__}: {exc}).",
            path=path,
            fix="re-export the file as .nii/.nii.gz or remove the case",
        ) from exc
    return data.astype(dtype, copy=False), np.asarray(img.affine, dtype=np.float64)


def read_header(path: str | Path) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    """Read only the header -> (shape, affine (4, 4), voxel spacing)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found.", path=path, fix="check the path or the dataset.json entry that lists it")
    if _uses_itk(path):
        shape, affine = read_itk_header(path)
        check_voxel_count(shape[:3], path)
        return shape, affine, tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(0)))
    try:
        img = nib.load(str(path))
        header = (tuple(int(s) for s in img.shape), np.asarray(img.affine),
                  tuple(float(z) for z in img.header.get_zooms()))
    except Exception as exc:
        raise DataError(f"cannot read NIfTI header ({type(exc).__name__}: {exc}).", path=path,
                        fix="re-export the file as .nii/.nii.gz or remove the case") from exc
    check_voxel_count(header[0], path)  # a volume that cannot be read later is a problem now
    return header


def write_volume(path: str | Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Atomically write `array` (D, H, W) as NIfTI with `affine` (identity when None)."""
    path = Path(path)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(array), affine)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    # nibabel picks compression from the file name, so the temp file must keep the real suffix.
    return atomic_write(path, lambda tmp: _save_via_suffix(img, tmp, suffix))


def _save_via_suffix(img: nib.Nifti1Image, tmp: Path, suffix: str) -> None:
    named = tmp.with_name(tmp.name + suffix)
    nib.save(img, str(named))
    named.replace(tmp)


def write_label_map(path: str | Path, label_map: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Atomically write an integer label map (D, H, W) as uint8 NIfTI."""
    label_map = np.asarray(label_map)
    if label_map.max(initial=0) > 255 or label_map.min(initial=0) < 0:
        return write_volume(path, label_map.astype(np.int16), affine)
    return write_volume(path, label_map.astype(np.uint8), affine)


def write_msd_dataset_json(
    root: str | Path,
    case_ids: list[str],
    labels: dict[int, str],
    *,
    name: str,
    modality: str = "MRI",
    with_labels: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an MSD-style dataset.json listing `case_ids` as ./imagesTr/ID.nii.gz (+ ./labelsTr/ID.nii.gz)."""
    training = []
    for cid in case_ids:
        entry = {"image": f"./imagesTr/{cid}.nii.gz"}
        if with_labels:
            entry["label"] = f"./labelsTr/{cid}.nii.gz"
        training.append(entry)
    spec: dict[str, Any] = {
        "name": name,
        "modality": {"0": modality},
        "labels": {str(k): v for k, v in sorted(labels.items())},
        "numTraining": len(case_ids),
        "numTest": 0,
        "training": training,
        "test": [],
    }
    if extra:
        spec.update(extra)
    return atomic_write_json(Path(root) / "dataset.json", spec)


def read_text_file(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content; DataError naming the file when it is missing, a folder or unreadable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found.", path=path, fix="create it or point to the right folder")
    if path.is_dir():
        raise DataError(f"expected a {what}, got a folder.", path=path, fix="point to the file itself")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the {what} ({type(exc).__name__}: {exc}).", path=path,
                        fix="check its permissions and that it is UTF-8 text") from exc


def load_json(path: str | Path) -> Any:
    """Load JSON with a clear error on a missing or malformed file."""
    path = Path(path)
    text = read_text_file(path, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc}).", path=path, fix="fix the syntax at the position given") from exc
    except RecursionError as exc:  # absurdly deep nesting
        raise DataError("invalid JSON (nested too deeply).", path=path, fix="flatten the document") from exc
