"""Load a case as network input: per-volume intensity normalisation and optional resampling (MONAI transforms)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.transforms import NormalizeIntensity, ScaleIntensityRangePercentiles, Spacing

from assft.config import PreprocessConfig
from assft.data.cases import Case
from assft.data.io import read_volume
from assft.data.nnunet import NnunetGrid
from assft.data.volume_cache import active_volume_cache
from assft.errors import DataError


@dataclass
class LoadedCase:
    """A preprocessed case: image (C, D, H, W) float32, label (D, H, W) int64 or None, original grid info."""

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    original_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    # set for an nnU-Net model's cases (assft.data.nnunet): the record that returns a prediction to the original grid
    nnunet_grid: NnunetGrid | None = None


def normalize_intensity(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Normalise one channel (D, H, W) float32 per volume: z-score (over nonzero voxels) or percentile clip to [0,1]."""
    if config.normalization == "none":
        return image.astype(np.float32, copy=False)
    if config.normalization == "zscore":
        nonzero = config.nonzero and bool((image != 0).any())
        out = NormalizeIntensity(nonzero=nonzero)(image[None])[0]
    else:
        lo, hi = config.percentiles
        out = ScaleIntensityRangePercentiles(lower=lo, upper=hi, b_min=0.0, b_max=1.0, clip=True)(image[None])[0]
    return np.asarray(out, dtype=np.float32)


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) from a 4x4 affine."""
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)))  # type: ignore[return-value]


def load_case(case: Case, config: PreprocessConfig | None = None, *, with_label: bool = True) -> LoadedCase:
    """Read, validate and preprocess one case; NaN/Inf voxels or an image/label shape mismatch are DataErrors.

    Inside `assft.data.volume_cache.use_volume_cache(folder)` the result comes from (or goes to) that cache."""
    config = config or PreprocessConfig()
    cache = active_volume_cache()
    if cache is not None:
        return cache.load(case, config, with_label)
    return load_case_uncached(case, config, with_label=with_label)


def load_case_uncached(case: Case, config: PreprocessConfig, *, with_label: bool = True) -> LoadedCase:
    """`load_case` from the files, never through a cache."""
    if config.scheme == "nnunetv2":
        return _load_nnunet_case(case, config, with_label)
    channels = []
    affine = None
    for path in case.image_paths:
        data, aff = read_volume(path)
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise DataError(f"expected a 3D volume, got shape {data.shape}.", path=path,
                            fix="split 4D files into one file per channel (nnU-Net _0000, _0001 ...)")
        if not np.isfinite(data).all():
            raise DataError(f"image has {int((~np.isfinite(data)).sum())} NaN/Inf voxels.", path=path,
                            fix="replace them (e.g. with 0) or remove the case; `assft data check` lists all")
        channels.append(normalize_intensity(data, config))
        affine = aff if affine is None else affine
    shapes = {c.shape for c in channels}
    if len(shapes) != 1:
        raise DataError(f"channels have different shapes {sorted(shapes)}.", path=case.image_path,
                        fix="resample all channels to one grid")
    image = np.stack(channels)
    label = None
    if with_label and case.label_path is not None:
        label = _read_label(case.label_path, image.shape[1:], affine)  # type: ignore[arg-type]
    original_shape = tuple(int(s) for s in image.shape[1:])
    spacing = spacing_of(affine)
    if config.target_spacing is not None and not np.allclose(spacing, config.target_spacing, atol=1e-3):
        image, label = _resample(image, label, affine, config.target_spacing)
    return LoadedCase(case.case_id, image, label, affine, original_shape, spacing)  # type: ignore[arg-type]


def _read_label(path: Path, grid: tuple[int, ...], image_affine: np.ndarray, affine_tol: float = 1e-3) -> np.ndarray:
    """The label map (D, H, W) int64, validated against its image: shape, finite integer values, affine."""
    raw, label_affine = read_volume(path, dtype=np.float32)
    if raw.ndim == 4 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.shape != tuple(grid):
        raise DataError(f"label shape {raw.shape} != image shape {tuple(grid)}.", path=path,
                        fix="re-export the label as one integer map on the image grid")
    if not np.isfinite(raw).all():
        raise DataError("label contains NaN/Inf.", path=path, fix="re-export the label as integers")
    if not np.array_equal(raw, np.round(raw)):  # astype(int64) would silently truncate them
        bad = float(raw[raw != np.round(raw)].flat[0])
        raise DataError(f"label has non-integer values (e.g. {bad:g}).", path=path,
                        fix="re-export the label as integers (nearest-neighbour when resampling)")
    if not np.allclose(label_affine, image_affine, atol=affine_tol, rtol=0):
        worst = float(np.abs(label_affine - image_affine).max())
        raise DataError(f"label affine differs from its image's (max difference {worst:.3g}), so the label does not "
                        "lie on the image.", path=path,
                        fix="resample the label onto the image or copy the image header (`assft data check` lists all)")
    return raw.astype(np.int64)


def _resample(image: np.ndarray, label: np.ndarray | None, affine: np.ndarray,
              target: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    from monai.data import MetaTensor

    img = MetaTensor(torch.from_numpy(image), affine=torch.as_tensor(affine))
    out_img = Spacing(pixdim=target, mode="bilinear")(img)
    out_label = None
    if label is not None:
        lab = MetaTensor(torch.from_numpy(label[None].astype(np.float32)), affine=torch.as_tensor(affine))
        out_label = np.asarray(Spacing(pixdim=target, mode="nearest")(lab))[0].astype(np.int64)
    return np.asarray(out_img, dtype=np.float32), out_label


def _load_nnunet_case(case: Case, config: PreprocessConfig, with_label: bool) -> LoadedCase:
    from assft.data.io import read_header
    from assft.data.nnunet import load_nnunet_case

    image, label, grid, original_shape = load_nnunet_case(case, config.nnunet, with_label=with_label)  # type: ignore[arg-type]
    shape, affine, _ = read_header(case.image_path)
    if tuple(shape[:3]) != original_shape:
        raise DataError(f"nnU-Net's reader sees a {original_shape} grid, nibabel {tuple(shape[:3])}.",
                        path=case.image_path, fix="re-export the image as a plain 3D NIfTI")
    return LoadedCase(case.case_id, image, label, affine, original_shape, spacing_of(affine), grid)


def restore_shape(probs: torch.Tensor, shape: tuple[int, int, int] | LoadedCase) -> torch.Tensor:
    """Probs (C, D, H, W) back on the original grid: of a LoadedCase (nnU-Net's own way for an nnU-Net model's case),
    or resized to `shape` with trilinear interpolation."""
    if isinstance(shape, LoadedCase):
        if shape.nnunet_grid is not None:
            from assft.data.nnunet import restore_nnunet

            return restore_nnunet(probs, shape.nnunet_grid)
        shape = shape.original_shape
    if tuple(probs.shape[1:]) == tuple(shape):
        return probs
    return torch.nn.functional.interpolate(probs[None], size=shape, mode="trilinear", align_corners=False)[0]
