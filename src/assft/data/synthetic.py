"""Small seeded 3D abdominal-like phantoms (body, liver, spleen, kidneys) for tests and the demo; not for experiments."""

from __future__ import annotations

from pathlib import Path

import zlib

import numpy as np
from scipy.ndimage import gaussian_filter

from assft.data.formats import keeps_locale
from assft.data.io import write_label_map, write_msd_dataset_json, write_volume
from assft.errors import ConfigError
from assft.utils.paths import check_generated_folder, mark_generated_folder
from assft.utils.seeding import make_rng

PHANTOM_LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "spleen", 3: "kidney_left", 4: "kidney_right"}

# Organ templates in normalised coordinates [-1, 1] per axis (axis 0 = superior-inferior, 1 = anterior-posterior,
# 2 = right-left): label -> (centre, semi-axes). Painted in label order; later organs overwrite earlier ones.
_ORGANS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((0.25, -0.05, -0.30), (0.48, 0.52, 0.42)),  # liver: large, right
    2: ((0.30, 0.30, 0.45), (0.30, 0.22, 0.20)),  # spleen: left, posterior
    3: ((-0.35, 0.40, 0.35), (0.30, 0.18, 0.16)),  # kidney_left
    4: ((-0.40, 0.40, -0.35), (0.30, 0.18, 0.16)),  # kidney_right
}
_BODY_AXES = (1.05, 0.85, 0.95)
_FAT_LAYER = 0.9  # inner body (muscle/viscera) = body ellipsoid scaled by this

# Tissue intensities: air, fat, soft tissue, then labels 1..4. CT in HU; MR in arbitrary positive units (T2-like:
# fat and kidney/spleen bright, liver and muscle dark), so the organ ordering differs from CT.
_TISSUES = ("air", "fat", "soft", 1, 2, 3, 4)
_CT_VALUES = {"air": -1000.0, "fat": -100.0, "soft": 40.0, 1: 60.0, 2: 45.0, 3: 150.0, 4: 150.0}
_MR_VALUES = {"air": 5.0, "fat": 700.0, "soft": 150.0, 1: 250.0, 2: 550.0, 3: 650.0, 4: 650.0}
_CT_NOISE = 10.0
_MR_NOISE = 20.0
_MR_BIAS = 0.15  # strength of the smooth multiplicative MR bias field
CONTRASTS = {"ct": "CT", "mr": "MRI"}


def make_phantom(
    case: int | str, *, shape: tuple[int, int, int] = (32, 32, 32), seed: int = 0, contrast: str = "ct"
) -> tuple[np.ndarray, np.ndarray]:
    """One phantom -> (image float32 (D, H, W), label uint8 (D, H, W)); randomness from make_rng(seed, "phantom", case)."""
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown contrast {contrast!r}.", fix=f"use one of {sorted(CONTRASTS)}")
    if len(shape) != 3 or min(shape) < 8:
        raise ConfigError(f"shape must be 3 sizes >= 8, got {shape}.", fix="use e.g. shape=(32, 32, 32)")
    rng = make_rng(seed, "phantom", str(case))
    grid = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij"))  # (3, D, H, W)

    body_axes = np.asarray(_BODY_AXES) * rng.uniform(0.93, 1.03, 3)
    body = _ellipsoid(grid, np.zeros(3), body_axes) < 1.0
    inner = _ellipsoid(grid, np.zeros(3), body_axes * _FAT_LAYER) < 1.0

    label = np.zeros(shape, dtype=np.uint8)
    for organ, (centre, axes) in _ORGANS.items():
        c = np.asarray(centre) + rng.uniform(-0.06, 0.06, 3)
        a = np.asarray(axes) * rng.uniform(0.85, 1.15, 3)
        r = _ellipsoid(grid, c, a, rotation=_rotation(rng, max_angle=0.35)) + _wobble(grid, rng, amplitude=0.15)
        label[(r < 1.0) & inner] = organ
    _ensure_present(label, grid)

    tissue = np.where(inner, 2, np.where(body, 1, 0))  # 0 air, 1 fat, 2 soft
    image = _intensities(tissue, label, grid, rng, contrast)
    return image, label


def make_phantom_dataset(
    out_dir: str | Path,
    n_cases: int = 12,
    *,
    shape: tuple[int, int, int] = (32, 32, 32),
    seed: int = 0,
    contrast: str = "ct",
    with_labels: bool = True,
    prefix: str = "phantom",
) -> Path:
    """Write `n_cases` phantoms as an MSD folder (imagesTr/, labelsTr/, dataset.json), 1 mm isotropic; returns out_dir."""
    if n_cases < 1:
        raise ConfigError(f"n_cases must be >= 1, got {n_cases}.", fix="pass n_cases=1 or more")
    out_dir = Path(out_dir)
    check_generated_folder(out_dir, "phantoms", "out_dir")  # never into a real dataset's folder
    mark_generated_folder(out_dir, "phantoms")
    affine = np.eye(4)
    case_ids = []
    for i in range(n_cases):
        case_id = f"{prefix}_{i:03d}"
        image, label = make_phantom(i, shape=shape, seed=seed, contrast=contrast)
        write_volume(out_dir / "imagesTr" / f"{case_id}.nii.gz", image, affine)
        if with_labels:
            write_label_map(out_dir / "labelsTr" / f"{case_id}.nii.gz", label, affine)
        case_ids.append(case_id)
    write_msd_dataset_json(
        out_dir, case_ids, PHANTOM_LABELS, name=f"{prefix}_{contrast}", modality=CONTRASTS[contrast],
        with_labels=with_labels, extra={"description": f"assft synthetic abdominal phantoms (seed {seed})"},
    )
    return out_dir


def _ellipsoid(
    grid: np.ndarray, centre: np.ndarray, axes: np.ndarray, rotation: np.ndarray | None = None
) -> np.ndarray:
    """Normalised squared radius (D, H, W) of an (optionally rotated) ellipsoid; < 1 inside."""
    p = grid - centre.reshape(3, 1, 1, 1)
    if rotation is not None:
        p = np.einsum("ij,j...->i...", rotation, p)
    return np.sum((p / axes.reshape(3, 1, 1, 1)) ** 2, axis=0)


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A random 3x3 rotation with each Euler angle in [-max_angle, max_angle] radians."""
    out = np.eye(3)
    for i, angle in enumerate(rng.uniform(-max_angle, max_angle, 3)):
        j, k = [a for a in range(3) if a != i]
        r = np.eye(3)
        r[j, j] = r[k, k] = np.cos(angle)
        r[j, k], r[k, j] = -np.sin(angle), np.sin(angle)
        out = out @ r
    return out


def _wobble(grid: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random deformation term (D, H, W): a sum of two low-frequency sinusoids."""
    out = np.zeros(grid.shape[1:])
    for _ in range(2):
        k = rng.normal(0.0, 2.5, 3)
        out += amplitude / 2 * np.sin(np.einsum("i,i...->...", k, grid) + rng.uniform(0, 2 * np.pi))
    return out


def _ensure_present(label: np.ndarray, grid: np.ndarray) -> None:
    """Guarantee every organ keeps voxels: paint a missing organ's template centre voxel and its neighbours."""
    for organ, (centre, _) in _ORGANS.items():
        if np.any(label == organ):
            continue
        idx = np.unravel_index(np.argmin(np.sum((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2, 0)), label.shape)
        sl = tuple(slice(max(i - 1, 0), i + 2) for i in idx)
        label[sl] = organ


def _intensities(
    tissue: np.ndarray, label: np.ndarray, grid: np.ndarray, rng: np.random.Generator, contrast: str
) -> np.ndarray:
    """Piecewise-constant tissue intensities (per-case jitter) + smoothing + noise (+ bias field for MR)."""
    values = _CT_VALUES if contrast == "ct" else _MR_VALUES
    jitter = rng.normal(0.0, 0.03, len(_TISSUES))  # relative per-case tissue contrast variation
    lut = {t: values[t] * (1.0 + j) if contrast == "mr" else values[t] + 100.0 * j for t, j in zip(_TISSUES, jitter)}
    image = np.select(
        [tissue == 0, tissue == 1, (tissue == 2) & (label == 0)], [lut["air"], lut["fat"], lut["soft"]], default=0.0
    )
    for organ in _ORGANS:
        image[label == organ] = lut[organ]
    image = gaussian_filter(image, sigma=0.6)  # partial-volume edges
    if contrast == "ct":
        image = image + rng.normal(0.0, _CT_NOISE, image.shape)
    else:
        coef = rng.uniform(-_MR_BIAS, _MR_BIAS, (3, 2))
        log_field = sum(coef[i, 0] * grid[i] + coef[i, 1] * (grid[i] ** 2 - 1 / 3) for i in range(3))
        image = image * np.exp(log_field)
        image = np.hypot(image + rng.normal(0.0, _MR_NOISE, image.shape), rng.normal(0.0, _MR_NOISE, image.shape))
    return image.astype(np.float32)


@keeps_locale
def write_dicom_series(folder: str | Path, array: np.ndarray, affine: np.ndarray | None = None, *,
                       series_uid: str | None = None, modality: str = "MR") -> Path:
    """Write an integer volume (i, j, k) with a RAS `affine` as a DICOM series, one .dcm per k slice (tests, demos).

    SimpleITK's ImageFileWriter writes each slice; the tags GDCM needs to rebuild the volume (series/study UIDs,
    image position and orientation, slice thickness, instance number) are set by hand as in SimpleITK's
    "DICOM series from array" example. Pixels are stored as int16, so the array must hold integers in that range.
    The affine's axes must be right-handed (DICOM derives the slice direction from the in-plane cosines).
    """
    import SimpleITK as sitk

    from assft.data.formats import itk_geometry

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = np.asarray(array)
    if values.ndim != 3 or not np.array_equal(values, np.round(values)) or values.min(initial=0) < -32768 \
            or values.max(initial=0) > 32767:
        raise ConfigError("write_dicom_series takes a 3D integer array within int16.", fix="round or rescale it")
    direction, spacing, origin = itk_geometry(np.eye(4) if affine is None else affine)
    if np.linalg.det(np.reshape(direction, (3, 3))) <= 0:
        raise ConfigError("the affine's axes are left-handed; a DICOM series cannot store that.",
                          fix="flip the last array axis and its affine column")
    image = sitk.GetImageFromArray(np.transpose(values.astype(np.int16), (2, 1, 0)))  # ITK wants (k, j, i)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    # A deterministic UID per folder name (crc32, not hash(): that is salted per process).
    series_uid = series_uid or f"1.2.826.0.1.3680043.2.1125.{zlib.crc32(folder.name.encode())}"
    cosines = "\\".join(f"{v:.10g}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4],
                                                direction[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # the UIDs below, not fresh ones per slice
    for k in range(image.GetDepth()):
        slice_k = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {"0008|0060": modality, "0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0020|000d": series_uid + ".1",
                "0020|000e": series_uid, "0020|0037": cosines, "0020|0032": "\\".join(f"{v:.10g}" for v in position),
                "0020|0013": str(k + 1), "0018|0050": f"{spacing[2]:.10g}", "0008|0018": f"{series_uid}.{k + 1}",
                "0028|0030": f"{spacing[1]:.10g}\\{spacing[0]:.10g}"}
        for tag, value in tags.items():
            slice_k.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        writer.Execute(slice_k)
    return folder
