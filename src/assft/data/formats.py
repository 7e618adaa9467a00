"""Volume file formats: which files and folders are volumes, their case ids, and reading the non-NIfTI ones.

NIfTI stays with nibabel (assft/data/io.py). NRRD, MetaImage (.mha/.mhd) and DICOM series are read with SimpleITK,
the ITK reader nnU-Net's own SimpleITKIO uses, so a volume reads the same here as in nnU-Net, 3D Slicer and MONAI's
ITKReader; DICOM goes through GDCM inside it (series sorting by position, rescale slope/intercept) instead of a
hand-written pydicom stack. SimpleITK reports LPS geometry; `ras_affine` converts it to nibabel's RAS affine so every
reader hands the rest of assft the same (array in index order i, j, k; affine voxel -> RAS mm) pair.
"""

from __future__ import annotations

import functools
import locale
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assft.data.limits import check_voxel_count
from assft.errors import DataError

T = TypeVar("T")

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
# Detached pixel data next to a .mhd/.nhdr header: read through the header, never a case of its own.
DATA_FILE_SUFFIXES = (".raw", ".zraw", ".raw.gz", ".img", ".img.gz")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_FIX = "re-export it as NIfTI (.nii.gz), NRRD, MHA or one DICOM series per folder, or remove the case"


def strip_volume_suffix(name: str) -> str:
    """File name without its full volume extension (.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd); unchanged otherwise."""
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_volume_file(path: Path) -> bool:
    """True for a file whose extension is a volume format assft reads."""
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def is_data_file(path: Path, siblings: set[str]) -> bool:
    """True for detached pixel data (X.raw, X.zraw, ...) whose header (X.mhd or X.nhdr) is among `siblings`."""
    lower = path.name.lower()
    for suffix in DATA_FILE_SUFFIXES:
        if lower.endswith(suffix):
            stem = path.name[: -len(suffix)]
            return f"{stem}.mhd" in siblings or f"{stem}.nhdr" in siblings
    return False


def ras_affine(direction: Any, spacing: Any, origin: Any) -> np.ndarray:
    """The 4x4 voxel (i, j, k) -> RAS mm affine nibabel uses, from ITK's LPS direction (row-major 3x3), spacing, origin.

    ITK maps index to LPS as origin + D @ diag(spacing) @ index; RAS flips the first two world axes.
    """
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


def itk_geometry(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """The inverse of `ras_affine`: (direction row-major 9 values, spacing, origin) in ITK's LPS convention."""
    affine = np.asarray(affine, dtype=np.float64)
    lps = LPS_TO_RAS @ affine[:3, :3]
    spacing = np.sqrt((lps**2).sum(axis=0))
    direction = lps / spacing
    return (tuple(float(v) for v in direction.ravel()), tuple(float(s) for s in spacing),
            tuple(float(v) for v in LPS_TO_RAS @ affine[:3, 3]))


def keeps_locale(function: Callable[..., T]) -> Callable[..., T]:
    """Run `function` and give the process its C locale back: GDCM (SimpleITK's DICOM layer) sets LC_CTYPE to "C",
    which would turn every later `open(..., text)` and subprocess decoding in this process into ASCII."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        saved = locale.setlocale(locale.LC_ALL)
        try:
            return function(*args, **kwargs)
        finally:
            locale.setlocale(locale.LC_ALL, saved)

    return run


def _sitk() -> Any:
    """SimpleITK with ITK's own console warnings off: they are multi-line C++ notes (e.g. "No Series were found"
    for a folder that is then listed as not read); what matters reaches the user as a DataError or a listing."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    return sitk


@keeps_locale
def dicom_series_files(folder: Path) -> list[str]:
    """The sorted slice files of the one DICOM series in `folder`; DataError when it holds none or several."""
    sitk = _sitk()

    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ())
    if not ids:
        raise DataError("folder holds no DICOM series.", path=folder,
                        fix="put the .dcm slices of one series in this folder, or remove the folder")
    if len(ids) > 1:
        raise DataError(f"folder holds {len(ids)} DICOM series ({', '.join(ids)}); a case is one series.", path=folder,
                        fix="move each series into a folder of its own (one folder per case)")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))


@keeps_locale
def has_dicom_series(folder: Path) -> bool:
    """True when GDCM finds at least one DICOM series directly in `folder`."""
    sitk = _sitk()

    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _file_info(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """(shape in index order i, j, k[, c], RAS affine) of one ITK-readable file, from its header only."""
    sitk = _sitk()

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if reader.GetDimension() != 3:
        shape = tuple(int(s) for s in reader.GetSize())
        raise DataError(f"expected a 3D volume, got {reader.GetDimension()}D of size {shape}.", path=path, fix=_FIX)
    shape = tuple(int(s) for s in reader.GetSize())
    if reader.GetNumberOfComponents() > 1:
        shape = (*shape, int(reader.GetNumberOfComponents()))
    return shape, ras_affine(reader.GetDirection(), reader.GetSpacing(), reader.GetOrigin())


@keeps_locale
def read_itk_header(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """(shape, RAS affine) of an NRRD/MetaImage file (header only) or a DICOM series folder (its slices' headers)."""
    try:
        if path.is_dir():
            files = dicom_series_files(path)
            if len(files) == 1:  # a multi-frame (enhanced) DICOM file carries the whole volume
                return _file_info(Path(files[0]))
            return _image_info(_read_series(path, files))
        return _file_info(path)
    except DataError:
        raise
    except RuntimeError as exc:  # SimpleITK raises RuntimeError for unreadable or truncated files
        raise DataError(f"cannot read the volume ({_short(exc)}).", path=path, fix=_FIX) from exc


def _image_info(image: Any) -> tuple[tuple[int, ...], np.ndarray]:
    shape = tuple(int(s) for s in image.GetSize())
    if image.GetNumberOfComponentsPerPixel() > 1:
        shape = (*shape, int(image.GetNumberOfComponentsPerPixel()))
    return shape, ras_affine(image.GetDirection(), image.GetSpacing(), image.GetOrigin())


def _read_series(folder: Path, files: list[str]) -> Any:
    sitk = _sitk()

    # The slices' sizes bound the volume before any pixel is read (a series of huge slices is refused up front).
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    columns, rows = (int(s) for s in reader.GetSize()[:2])
    check_voxel_count((columns, rows, len(files)), folder)
    series = sitk.ImageSeriesReader()
    series.SetFileNames(files)
    return series.Execute()


@keeps_locale
def read_itk_volume(path: Path, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read an NRRD/MetaImage file or a DICOM series folder -> (array in index order i, j, k[, c], RAS affine)."""
    sitk = _sitk()

    try:
        files = dicom_series_files(path) if path.is_dir() else [str(path)]
        if len(files) > 1:
            image = _read_series(path, files)
        else:  # one file: NRRD/MetaImage, or a multi-frame DICOM holding the whole volume
            shape, _ = _file_info(Path(files[0]))
            check_voxel_count(shape[:3], path)
            image = sitk.ReadImage(files[0])
    except DataError:
        raise
    except RuntimeError as exc:
        raise DataError(f"cannot read the volume ({_short(exc)}).", path=path, fix=_FIX) from exc
    if image.GetDimension() != 3:
        raise DataError(f"expected a 3D volume, got {image.GetDimension()}D.", path=path, fix=_FIX)
    array = sitk.GetArrayViewFromImage(image)  # (k, j, i[, c]): ITK's fastest axis is last
    order = (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0)
    data = np.ascontiguousarray(np.transpose(array, order)).astype(dtype, copy=False)
    return data, ras_affine(image.GetDirection(), image.GetSpacing(), image.GetOrigin())


def _short(exc: Exception) -> str:
    """SimpleITK's messages span several lines with C++ source locations; keep the last informative line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
