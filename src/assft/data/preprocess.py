"""Load a case as network input on the grid the model expects (MONAI's Orientation, Spacing), normalise its
intensities, and bring results back onto the volume's own grid (the inverse resampling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.transforms import NormalizeIntensity, Orientation, ScaleIntensityRange, ScaleIntensityRangePercentiles, Spacing

from assft.config import PreprocessConfig
from assft.data.cases import Case, LoadedCase
from assft.data.geometry import on_reference_grid
from assft.data.io import read_header, read_volume
from assft.data.nnunet import load_nnunet_case, restore_nnunet
from assft.data.volume_cache import active_volume_cache
from assft.errors import DataError


def normalize_intensity(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Normalise one channel (D, H, W) float32 per volume: z-score (over nonzero voxels) or percentile clip to [0,1]."""
    if config.normalization == "none":
        return image.astype(np.float32, copy=False)
    if config.normalization == "zscore":
        nonzero = config.nonzero and bool((image != 0).any())
        out = NormalizeIntensity(nonzero=nonzero)(image[None])[0]
    elif config.normalization == "range":
        a_min, a_max, b_min, b_max = config.intensity_range
        out = ScaleIntensityRange(a_min=a_min, a_max=a_max, b_min=b_min, b_max=b_max, clip=True)(image[None])[0]
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
    if cache is None:
        return load_case_uncached(case, config, with_label=with_label)
    loaded = cache.get(case, config, with_label)
    if loaded is None:
        loaded = cache.put(case, config, with_label, load_case_uncached(case, config, with_label=with_label))
    return loaded


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
        channels.append(data.astype(np.float32, copy=False))
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
    grid_affine = None
    if grid_changes(affine, config):
        image, label, grid_affine = _to_model_grid(image, label, affine, config)  # type: ignore[arg-type]
    image = np.stack([normalize_intensity(c, config) for c in image])
    return LoadedCase(case.case_id, image, label, affine, original_shape, spacing, grid_affine)  # type: ignore[arg-type]


def orientation_of(affine: np.ndarray) -> str:
    """Axis codes of a 4x4 affine, e.g. "RAS" (nibabel's convention: the direction each axis increases towards)."""
    import nibabel as nib

    return "".join(nib.aff2axcodes(np.asarray(affine)))


def grid_changes(affine: np.ndarray, config: PreprocessConfig) -> list[str]:
    """What bringing a volume with `affine` to the model's grid does, one phrase per change ([] = nothing)."""
    changes = []
    if config.orientation is not None and orientation_of(affine) != config.orientation:
        changes.append(f"reorient {orientation_of(affine)} -> {config.orientation}")
    spacing = spacing_of(affine)
    if config.target_spacing is not None and not np.allclose(spacing, config.target_spacing, atol=1e-3):
        old = " x ".join(f"{s:g}" for s in spacing)
        new = " x ".join(f"{s:g}" for s in config.target_spacing)
        changes.append(f"resample {old} mm -> {new} mm")
    return changes


def _to_model_grid(image: np.ndarray, label: np.ndarray | None, affine: np.ndarray, config: PreprocessConfig
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """MONAI's Orientation then Spacing (bilinear image, nearest label), as a MONAI bundle's preprocessing runs them."""
    from monai.data import MetaTensor

    def move(array: np.ndarray, mode: str) -> MetaTensor:
        out = MetaTensor(torch.from_numpy(np.ascontiguousarray(array)), affine=torch.as_tensor(affine))
        if config.orientation is not None:
            out = Orientation(axcodes=config.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S")))(out)
        if config.target_spacing is not None:
            out = Spacing(pixdim=config.target_spacing, mode=mode)(out)
        return out

    img = move(image, "bilinear")
    out_label = None
    if label is not None:
        out_label = np.asarray(move(label[None].astype(np.float32), "nearest"))[0].astype(np.int64)
    return np.asarray(img, dtype=np.float32), out_label, np.asarray(img.affine, dtype=np.float64)


def to_original_grid(maps: torch.Tensor, loaded: LoadedCase, *, probabilities: bool = True) -> torch.Tensor:
    """Maps (C, D, H, W) on `loaded.image`'s grid -> the file's own grid; the one way results go back.

    Scheme "nnunetv2" (`loaded.nnunet_grid`): nnU-Net's own return (assft.data.nnunet; class probabilities unless
    `probabilities` is False, e.g. an uncertainty map). Scheme "assft": one resampling from the model grid's affine to
    the file's affine and shape (MONAI's SpatialResample, bilinear), what MONAI's Invertd does for Orientation +
    Spacing, in world space, so a reoriented copy of a volume gets the same world-space result.
    """
    if loaded.nnunet_grid is not None:
        return restore_nnunet(maps, loaded.nnunet_grid, probabilities=probabilities)
    if loaded.grid_affine is None:
        if tuple(maps.shape[1:]) == tuple(loaded.original_shape):
            return maps
        return torch.nn.functional.interpolate(maps[None], size=loaded.original_shape, mode="trilinear",
                                               align_corners=False)[0]
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    src = MetaTensor(maps.float().cpu(), affine=torch.as_tensor(loaded.grid_affine, dtype=torch.float64))
    out = SpatialResample(mode="bilinear", padding_mode="border")(
        src, dst_affine=torch.as_tensor(loaded.affine, dtype=torch.float64), spatial_size=loaded.original_shape)
    return torch.as_tensor(np.asarray(out), dtype=torch.float32)


def _read_label(path: Path, grid: tuple[int, ...], image_affine: np.ndarray, affine_tol: float = 1e-3) -> np.ndarray:
    """The label map (D, H, W) int64, validated against its image: shape, finite integer values, affine."""
    raw, label_affine = read_volume(path, dtype=np.float32)
    if raw.ndim == 4 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.shape != tuple(grid) and sorted(raw.shape) != sorted(grid):
        raise DataError(f"label shape {raw.shape} != image shape {tuple(grid)}.", path=path,
                        fix="re-export the label as one integer map on the image grid")
    # The one geometry rule (assft.data.geometry): same grid in world space, reoriented when stored otherwise.
    raw, _ = on_reference_grid(raw, label_affine, tuple(grid), image_affine, path=path, what="label", tol=affine_tol)
    if not np.isfinite(raw).all():
        raise DataError("label contains NaN/Inf.", path=path, fix="re-export the label as integers")
    if not np.array_equal(raw, np.round(raw)):  # astype(int64) would silently truncate them
        bad = float(raw[raw != np.round(raw)].flat[0])
        raise DataError(f"label has non-integer values (e.g. {bad:g}).", path=path,
                        fix="re-export the label as integers (nearest-neighbour when resampling)")
    return raw.astype(np.int64)


def _load_nnunet_case(case: Case, config: PreprocessConfig, with_label: bool) -> LoadedCase:
    image, label, grid, original_shape = load_nnunet_case(case, config.nnunet, with_label=with_label)  # type: ignore[arg-type]
    shape, affine, _ = read_header(case.image_path)
    if tuple(shape[:3]) != original_shape:
        raise DataError(f"nnU-Net's reader sees a {original_shape} grid, nibabel {tuple(shape[:3])}.",
                        path=case.image_path, fix="re-export the image as a plain 3D NIfTI")
    return LoadedCase(case.case_id, image, label, affine, original_shape, spacing_of(affine), nnunet_grid=grid)
