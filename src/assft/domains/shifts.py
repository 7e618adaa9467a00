"""Named, seeded intensity/resolution shifts that turn one real dataset into simulated target domains.

Every shift works on the image only (labels are never touched) and preserves its shape exactly. The raw image, on
any intensity scale, is first rescaled robustly to [0, 1] (0.5/99.5 percentiles of the nonzero voxels, then
clipped); the shift is applied in that scale, and the result is returned as float32 in the same "[0, 1]-ish" scale
(noise and bias fields may push values a little outside [0, 1]). All randomness comes from
`make_rng(seed, domain, case_id)`, so a case's shifted image depends only on (image, domain, seed, case_id,
severity) and is bit-identical across calls. Noise and bias fields are numpy/scipy equivalents of MONAI's
RandRicianNoise and RandBiasField (same formulas) so that one Generator drives everything and no torch import is needed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter

from assft.data.io import load_json, read_volume, write_volume
from assft.errors import ConfigError, DataError
from assft.registry import Registry
from assft.utils.atomic import atomic_write_json
from assft.utils.seeding import make_rng

ShiftFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

DOMAINS: Registry[ShiftFn] = Registry("domain")

# Default severities in [0, 1] (None -> these). Tuned 2026-11-26 with benchmarks/foundation_hippocampus.py so a
# UNet trained on 40 unshifted hippocampus cases (Dice 0.84) loses 0.10-0.32 Dice on 20 shifted test cases.
DEFAULT_SEVERITY: dict[str, float] = {
    "identity": 0.0,
    "t2like": 0.4,
    "lowfield": 0.8,
    "bias": 0.7,
    "thickslice": 1.0,
    "mixed": 1.0,
}

# Effect sizes at severity 1.0 (the severity scales them linearly).
RESCALE_PERCENTILES: tuple[float, float] = (0.5, 99.5)
T2LIKE_KNOTS = 6  # control points of the random intensity mapping
T2LIKE_JITTER = 0.1  # std of the per-case jitter of the inverted control points
LOWFIELD_MAX_SIGMA = 2.0  # Gaussian blur sigma (voxels)
LOWFIELD_MAX_NOISE = 0.3  # Rician noise std (in the [0, 1] scale)
BIAS_MAX_LOG_STD = 0.6  # spread of the log bias field (Legendre coefficient range)
BIAS_DEGREE = 3
BIAS_MAX_LOG_GAMMA = float(np.log(2.5))  # |log gamma| of the gamma curve
THICKSLICE_MAX_FACTOR = 5  # slab thickness in voxels at severity 1 (1 + severity * 4, rounded)
THICKSLICE_AXIS = 2  # the slice axis (last array axis, usually z in NIfTI)
MIXED_IDENTITY_PROB = 0.2
MIXED_SUBDOMAINS: tuple[str, ...] = ("t2like", "lowfield", "bias", "thickslice")
MIXED_SEVERITY_RANGE: tuple[float, float] = (0.5, 1.0)  # x the sub-domain's default severity


def _register(name: str) -> Callable[[ShiftFn], ShiftFn]:
    """Register a shift and append its default severity to the first docstring line (for `list_domains`)."""

    def decorator(fn: ShiftFn) -> ShiftFn:
        lines = (fn.__doc__ or "").strip().splitlines()
        lines[0] = f"{lines[0].rstrip('.')} (default severity {DEFAULT_SEVERITY[name]:g})."
        fn.__doc__ = "\n".join(lines)
        return DOMAINS.register(name)(fn)

    return decorator


def list_domains() -> dict[str, str]:
    """Domain name -> one-line description with its default severity."""
    return DOMAINS.describe()


def rescale_intensity(image: np.ndarray) -> np.ndarray:
    """Robustly rescale raw intensities (D, H, W) to [0, 1] using percentiles of the nonzero voxels; float32."""
    x = np.asarray(image, dtype=np.float64)
    nonzero = x[x != 0]
    if nonzero.size == 0:
        return np.zeros(x.shape, dtype=np.float32)
    lo, hi = np.percentile(nonzero, RESCALE_PERCENTILES)
    scale = hi - lo if hi > lo else 1.0
    return np.clip((x - lo) / scale, 0.0, 1.0).astype(np.float32)


def resolve_severity(domain: str, severity: float | None) -> float:
    """The severity to use: `severity` checked to lie in [0, 1], or the domain's default when None."""
    DOMAINS.get(domain)
    if severity is None:
        return DEFAULT_SEVERITY[domain]
    if not 0.0 <= float(severity) <= 1.0:
        raise ConfigError(f"severity must be in [0, 1], got {severity}.", fix="pass a value in [0, 1] or None")
    return float(severity)


def apply_shift(
    image: np.ndarray, domain: str, *, case_id: str, seed: int, severity: float | None = None
) -> np.ndarray:
    """Shift a raw image (D, H, W) into `domain`; returns float32 (D, H, W) in the internal [0, 1]-ish scale."""
    fn = DOMAINS.get(domain)
    sev = resolve_severity(domain, severity)
    image = np.asarray(image)
    if image.ndim != 3:
        raise DataError(
            f"expected a single-channel 3D image (D, H, W), got shape {image.shape}.",
            fix="pass one channel at a time (e.g. image[..., 0]) or squeeze singleton axes",
        )
    if not np.all(np.isfinite(image)):
        raise DataError("image contains NaN or Inf.", fix="replace non-finite voxels (e.g. np.nan_to_num) first")
    x = rescale_intensity(image)
    out = fn(x, sev, make_rng(seed, domain, case_id))
    return np.ascontiguousarray(out, dtype=np.float32).reshape(image.shape)


def describe_case(domain: str, case_id: str, seed: int, severity: float | None = None) -> dict[str, Any]:
    """Provenance of one case: {"domain", "sub_domain", "severity", "shifted"} (the draw `mixed` makes)."""
    sev = resolve_severity(domain, severity)
    if domain == "mixed":
        sub, sub_sev = _mixed_plan(make_rng(seed, "mixed", case_id), sev)
    else:
        sub, sub_sev = domain, sev
    shifted = sub != "identity" and sub_sev > 0
    return {"domain": domain, "sub_domain": sub, "severity": round(float(sub_sev), 6), "shifted": shifted}


# --- the shifts: fn(x in [0, 1] (D, H, W), severity, rng) -> (D, H, W) -------------------------------------------


@_register("identity")
def _identity(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """No shift: the rescaled source image, the unshifted control."""
    return x


@_register("t2like")
def _t2like(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """T1->T2-like contrast change: a random smooth non-monotonic intensity map inverting the tissue range."""
    knots = np.linspace(0.0, 1.0, T2LIKE_KNOTS)
    # background stays dark; the tissue range is inverted with per-case jitter (bright <-> dark).
    values = np.clip(1.0 - knots + rng.normal(0.0, T2LIKE_JITTER, knots.size), 0.05, 1.0)
    values[0] = 0.0
    mapped = PchipInterpolator(knots, values)(x)
    return (1.0 - severity) * x + severity * mapped


@_register("lowfield")
def _lowfield(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Low-field scanner: lower resolution and SNR via Gaussian blur plus Rician noise."""
    sigma = severity * LOWFIELD_MAX_SIGMA * rng.uniform(0.8, 1.2)
    std = severity * LOWFIELD_MAX_NOISE * rng.uniform(0.8, 1.2)
    y = gaussian_filter(x.astype(np.float64), sigma=sigma, mode="nearest") if sigma > 0 else x
    if std <= 0:
        return y
    # Rician magnitude noise, as monai.transforms.RandRicianNoise: |y + n1 + i n2| with n1, n2 ~ N(0, std).
    return np.hypot(y + rng.normal(0.0, std, x.shape), rng.normal(0.0, std, x.shape))


@_register("bias")
def _bias(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Coil inhomogeneity and contrast change: a strong smooth multiplicative bias field after a gamma curve."""
    log_gamma = severity * BIAS_MAX_LOG_GAMMA * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    c = severity * BIAS_MAX_LOG_STD
    y = np.power(x, np.exp(log_gamma))
    if c <= 0:
        return y
    log_field = legendre_field(x.shape, rng.uniform(-c, c, _n_legendre_terms(BIAS_DEGREE)), BIAS_DEGREE)
    return y * np.exp(log_field - log_field.mean())  # geometric mean 1: shading, not global scaling


@_register("thickslice")
def _thickslice(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Thick-slice acquisition: slab averaging along one axis, then linear resampling back to the original grid."""
    factor = int(round(1 + severity * (THICKSLICE_MAX_FACTOR - 1)))
    offset = int(rng.integers(factor))  # per-case slab phase
    return thick_slices(x, factor, axis=THICKSLICE_AXIS, offset=offset)


@_register("mixed")
def _mixed(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Heterogeneous pool: each case draws identity (20%) or t2like/lowfield/bias/thickslice at 0.5-1x default."""
    sub, sub_sev = _mixed_plan(rng, severity)
    return DOMAINS.get(sub)(x, sub_sev, rng)


def _mixed_plan(rng: np.random.Generator, severity: float) -> tuple[str, float]:
    """Draw (sub-domain, severity) for one `mixed` case; the first draws of the case's rng."""
    if rng.random() < MIXED_IDENTITY_PROB:
        return "identity", 0.0
    sub = MIXED_SUBDOMAINS[int(rng.integers(len(MIXED_SUBDOMAINS)))]
    scale = rng.uniform(*MIXED_SEVERITY_RANGE)
    return sub, float(min(1.0, severity * scale * DEFAULT_SEVERITY[sub]))


def _n_legendre_terms(degree: int) -> int:
    """Number of 3D Legendre terms P_i P_j P_k with i + j + k <= degree."""
    return (degree + 1) * (degree + 2) * (degree + 3) // 6


def legendre_field(shape: tuple[int, ...], coeffs: np.ndarray, degree: int) -> np.ndarray:
    """Smooth log bias field (D, H, W): sum of coeffs x 3D Legendre products of total degree <= degree on [-1, 1]^3.

    The same basis as monai.transforms.RandBiasField; the caller exponentiates it.
    """
    mat = np.zeros((degree + 1,) * 3)
    terms = [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)]
    if len(coeffs) != len(terms):
        raise ConfigError(f"expected {len(terms)} coefficients for degree {degree}, got {len(coeffs)}.",
                          fix="pass _n_legendre_terms(degree) coefficients")
    for (i, j, k), value in zip(terms, coeffs):
        mat[i, j, k] = value
    coords = [np.linspace(-1.0, 1.0, n) for n in shape]
    return np.polynomial.legendre.leggrid3d(*coords, mat)


def thick_slices(x: np.ndarray, factor: int, *, axis: int, offset: int = 0) -> np.ndarray:
    """Average slabs of `factor` slices along `axis` (starting at -offset) and resample linearly to x.shape."""
    if factor <= 1:
        return x
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    n = x.shape[0]
    n_low = -(-(n + offset) // factor)
    padded = np.pad(x, [(offset, n_low * factor - n - offset)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    low = padded.reshape(n_low, factor, *x.shape[1:]).mean(axis=1)
    # slab k is centred on padded index k*factor + (factor-1)/2; map each original slice to slab coordinates.
    pos = np.clip((np.arange(n) + offset + 0.5) / factor - 0.5, 0.0, n_low - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_low - 1)
    w = (pos - i0).reshape(-1, *([1] * (x.ndim - 1)))
    out = low[i0] * (1.0 - w) + low[i1] * w
    return np.moveaxis(out, 0, axis)


# --- datasets -----------------------------------------------------------------------------------------------------


def apply_domain_to_dataset(
    in_dir: str | Path, out_dir: str | Path, domain: str, seed: int, severity: float | None = None
) -> Path:
    """Write the MSD dataset `in_dir` shifted into `domain` to `out_dir` (labels copied unchanged); returns out_dir."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    sev = resolve_severity(domain, severity)
    if out_dir.resolve() == in_dir.resolve():
        raise ConfigError("out_dir is the input dataset folder.", path=out_dir, fix="choose a new output folder")
    spec, entries = _read_msd(in_dir)
    training, cases = [], {}
    for image_path, label_path in entries:
        case_id = _case_id(image_path)
        image, affine = read_volume(image_path)
        shifted = apply_shift(image, domain, case_id=case_id, seed=seed, severity=sev)
        write_volume(out_dir / "imagesTr" / f"{case_id}.nii.gz", shifted, affine)
        entry = {"image": f"./imagesTr/{case_id}.nii.gz"}
        if label_path is not None:
            (out_dir / "labelsTr").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(label_path, out_dir / "labelsTr" / label_path.name)
            entry["label"] = f"./labelsTr/{label_path.name}"
        training.append(entry)
        cases[case_id] = describe_case(domain, case_id, seed, sev)
    out_spec = {k: v for k, v in spec.items() if k not in ("training", "test", "numTraining", "numTest")}
    out_spec.update(
        name=f"{spec.get('name', in_dir.name)}_{domain}",
        numTraining=len(training),
        numTest=0,
        training=training,
        test=[],
        assft_provenance={"domain": domain, "seed": seed, "severity": sev, "source": str(in_dir), "cases": cases},
    )
    atomic_write_json(out_dir / "dataset.json", out_spec)
    return out_dir


def _read_msd(root: Path) -> tuple[dict[str, Any], list[tuple[Path, Path | None]]]:
    """Minimal MSD dataset.json reader -> (spec, [(image path, label path or None)]); to be replaced by data.layout."""
    if not (root / "dataset.json").is_file():
        raise DataError(
            "no dataset.json found.", path=root,
            fix="point to an MSD-layout folder (dataset.json + imagesTr/ + labelsTr/)",
        )
    spec = load_json(root / "dataset.json")
    training = spec.get("training") if isinstance(spec, dict) else None
    if not isinstance(training, list) or not training:
        raise DataError("dataset.json has no 'training' list.", path=root / "dataset.json",
                        fix="list cases as {'image': './imagesTr/X.nii.gz', 'label': './labelsTr/X.nii.gz'}")
    from assft.data.layout import resolve_entry
    from assft.data.limits import allow_outside_root

    meta_path, root = root / "dataset.json", Path(os.path.abspath(root))
    entries = []
    for i, item in enumerate(training):
        image = item.get("image") if isinstance(item, dict) else item
        label = item.get("label") if isinstance(item, dict) else None
        # Same rules as load_dataset: entries stay inside the dataset folder and keep their own names (case ids),
        # so a crafted dataset.json cannot make `domains apply` copy files from elsewhere into its output.
        image_path = resolve_entry(root, image, meta_path=meta_path, what=f"training entry {i} 'image'",
                                   allow_outside=allow_outside_root())
        label_path = resolve_entry(root, label, meta_path=meta_path, what=f"training entry {i} 'label'",
                                   allow_outside=allow_outside_root()) if label not in (None, "") else None
        if label_path is not None and not label_path.is_file():
            raise DataError("label file not found.", path=label_path, fix="fix the 'label' entry in dataset.json")
        entries.append((image_path, label_path))
    return spec, entries


def _case_id(path: Path) -> str:
    """File name without .nii.gz / .nii."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
