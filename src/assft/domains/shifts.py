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
from dataclasses import dataclass
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
Sampler = Callable[[float, np.random.Generator], dict[str, Any]]
Applier = Callable[[np.ndarray, dict[str, Any], np.random.Generator], np.ndarray]

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
    "multisite": 1.0,
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
# multisite: four "sites" (scanners/protocols), each one shift type with parameters drawn once per site, in unequal
# shares, plus unshifted volumes; a volume's site is drawn from its own seeded generator.
MULTISITE_SHARES: tuple[float, ...] = (0.35, 0.25, 0.20, 0.10)  # sites 1-4; the remaining 10 % are unshifted
MULTISITE_SEVERITY_RANGE: tuple[float, float] = (0.75, 1.25)  # x the shift type's default severity, per site


@dataclass(frozen=True)
class ShiftPlan:
    """What is applied to one case: the shift type, its severity and its sampled parameters (JSON-able)."""

    domain: str
    kind: str  # the shift actually applied (identity, t2like, lowfield, bias, thickslice)
    severity: float
    params: dict[str, Any]
    site: int | None = None  # multisite: 1-based site, 0 = unshifted

    def to_dict(self) -> dict[str, Any]:
        """Provenance record of the case (dataset.json `assft_provenance.cases`)."""
        out = {"domain": self.domain, "sub_domain": self.kind, "severity": round(float(self.severity), 6),
               "shifted": self.kind != "identity" and self.severity > 0, "params": self.params}
        if self.site is not None:
            out["site"] = self.site
        return out


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


def plan_case(domain: str, case_id: str, seed: int, severity: float | None = None
              ) -> tuple[ShiftPlan, np.random.Generator]:
    """Sample what `domain` does to `case_id` (TorchIO style: sample, then apply, then record what was applied).

    Returns the plan and the case's generator, advanced past the sampling draws: `apply_plan` draws per-volume
    noise from it, so plan + apply is bit-identical to every earlier release of the same domain.
    """
    sev = resolve_severity(domain, severity)
    rng = make_rng(seed, domain, case_id)
    site = None
    if domain == "mixed":
        kind, sub_sev = _mixed_plan(rng, sev)
        params = SAMPLERS[kind](sub_sev, rng)
    elif domain == "multisite":
        site = _multisite_site(rng)
        kind, sub_sev, params = multisite_sites(seed, sev)[site]
    else:
        kind, sub_sev = domain, sev
        params = SAMPLERS[kind](sub_sev, rng)
    return ShiftPlan(domain, kind, float(sub_sev), params, site), rng


def apply_plan(x: np.ndarray, plan: ShiftPlan, rng: np.random.Generator) -> np.ndarray:
    """Apply a sampled plan to a rescaled image x (D, H, W) in [0, 1]; noise comes from `rng`."""
    return APPLIERS[plan.kind](x, plan.params, rng)


def apply_shift(
    image: np.ndarray, domain: str, *, case_id: str, seed: int, severity: float | None = None
) -> np.ndarray:
    """Shift a raw image (D, H, W) into `domain`; returns float32 (D, H, W) in the internal [0, 1]-ish scale."""
    plan, rng = plan_case(domain, case_id, seed, severity)
    image = np.asarray(image)
    if image.ndim != 3:
        raise DataError(
            f"expected a single-channel 3D image (D, H, W), got shape {image.shape}.",
            fix="pass one channel at a time (e.g. image[..., 0]) or squeeze singleton axes",
        )
    if not np.all(np.isfinite(image)):
        raise DataError("image contains NaN or Inf.", fix="replace non-finite voxels (e.g. np.nan_to_num) first")
    out = apply_plan(rescale_intensity(image), plan, rng)
    return np.ascontiguousarray(out, dtype=np.float32).reshape(image.shape)


def describe_case(domain: str, case_id: str, seed: int, severity: float | None = None) -> dict[str, Any]:
    """Provenance of one case: domain, sub_domain (the shift applied), severity, shifted, the sampled params
    (and the site, for multisite)."""
    return plan_case(domain, case_id, seed, severity)[0].to_dict()


# --- samplers: (severity, rng) -> params; appliers: (x in [0, 1] (D, H, W), params, rng) -> (D, H, W) -------------


def _sample_nothing(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    return {}


def _apply_identity(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return x


def _sample_t2like(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    # background stays dark; the tissue range is inverted with jitter (bright <-> dark).
    knots = np.linspace(0.0, 1.0, T2LIKE_KNOTS)
    values = np.clip(1.0 - knots + rng.normal(0.0, T2LIKE_JITTER, knots.size), 0.05, 1.0)
    values[0] = 0.0
    return {"severity": severity, "values": values.tolist()}


def _apply_t2like(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    knots = np.linspace(0.0, 1.0, T2LIKE_KNOTS)
    mapped = PchipInterpolator(knots, np.asarray(params["values"]))(x)
    return (1.0 - params["severity"]) * x + params["severity"] * mapped


def _sample_lowfield(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    sigma = severity * LOWFIELD_MAX_SIGMA * rng.uniform(0.8, 1.2)
    std = severity * LOWFIELD_MAX_NOISE * rng.uniform(0.8, 1.2)
    return {"sigma": float(sigma), "noise_std": float(std)}


def _apply_lowfield(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    sigma, std = params["sigma"], params["noise_std"]
    y = gaussian_filter(x.astype(np.float64), sigma=sigma, mode="nearest") if sigma > 0 else x
    if std <= 0:
        return y
    # Rician magnitude noise, as monai.transforms.RandRicianNoise: |y + n1 + i n2| with n1, n2 ~ N(0, std).
    return np.hypot(y + rng.normal(0.0, std, x.shape), rng.normal(0.0, std, x.shape))


def _sample_bias(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    log_gamma = severity * BIAS_MAX_LOG_GAMMA * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    c = severity * BIAS_MAX_LOG_STD
    coeffs = rng.uniform(-c, c, _n_legendre_terms(BIAS_DEGREE)).tolist() if c > 0 else []
    return {"log_gamma": float(log_gamma), "coeffs": coeffs}


def _apply_bias(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    y = np.power(x, np.exp(params["log_gamma"]))
    if not params["coeffs"]:
        return y
    log_field = legendre_field(x.shape, np.asarray(params["coeffs"]), BIAS_DEGREE)
    return y * np.exp(log_field - log_field.mean())  # geometric mean 1: shading, not global scaling


def _sample_thickslice(severity: float, rng: np.random.Generator) -> dict[str, Any]:
    return {"factor": int(round(1 + severity * (THICKSLICE_MAX_FACTOR - 1)))}


def _apply_thickslice(x: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    factor = params["factor"]
    offset = int(rng.integers(factor))  # per-volume slab phase: a property of the acquisition, not of the site
    return thick_slices(x, factor, axis=THICKSLICE_AXIS, offset=offset)


SAMPLERS: dict[str, Sampler] = {"identity": _sample_nothing, "t2like": _sample_t2like, "lowfield": _sample_lowfield,
                                "bias": _sample_bias, "thickslice": _sample_thickslice}
APPLIERS: dict[str, Applier] = {"identity": _apply_identity, "t2like": _apply_t2like, "lowfield": _apply_lowfield,
                                "bias": _apply_bias, "thickslice": _apply_thickslice}


def _shift_fn(kind: str) -> ShiftFn:
    def fn(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
        return APPLIERS[kind](x, SAMPLERS[kind](severity, rng), rng)

    return fn


def _described(kind: str, doc: str) -> ShiftFn:
    fn = _shift_fn(kind)
    fn.__doc__ = doc
    return fn


_register("identity")(_described("identity", "No shift: the rescaled source image, the unshifted control."))
_register("t2like")(_described(
    "t2like", "T1->T2-like contrast change: a random smooth non-monotonic intensity map inverting the tissue range."))
_register("lowfield")(_described(
    "lowfield", "Low-field scanner: lower resolution and SNR via Gaussian blur plus Rician noise."))
_register("bias")(_described(
    "bias", "Coil inhomogeneity and contrast change: a strong smooth multiplicative bias field after a gamma curve."))
_register("thickslice")(_described(
    "thickslice", "Thick-slice acquisition: slab averaging along one axis, then linear resampling back to the grid."))


@_register("mixed")
def _mixed(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Heterogeneous pool: each case draws identity (20%) or t2like/lowfield/bias/thickslice at 0.5-1x default."""
    sub, sub_sev = _mixed_plan(rng, severity)
    return _shift_fn(sub)(x, sub_sev, rng)


@_register("multisite")
def _multisite(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Multi-site pool: 4 sites (one shift type each, parameters fixed per site) in shares 35/25/20/10 % + 10 % unshifted."""
    raise ConfigError("multisite needs the domain seed for its sites.", fix="use apply_shift / plan_case")


def _mixed_plan(rng: np.random.Generator, severity: float) -> tuple[str, float]:
    """Draw (sub-domain, severity) for one `mixed` case; the first draws of the case's rng."""
    if rng.random() < MIXED_IDENTITY_PROB:
        return "identity", 0.0
    sub = MIXED_SUBDOMAINS[int(rng.integers(len(MIXED_SUBDOMAINS)))]
    scale = rng.uniform(*MIXED_SEVERITY_RANGE)
    return sub, float(min(1.0, severity * scale * DEFAULT_SEVERITY[sub]))


def _multisite_site(rng: np.random.Generator) -> int:
    """The case's site (1..4, 0 = unshifted) by the shares; the first draw of the case's rng."""
    u = float(rng.random())
    edges = np.cumsum(MULTISITE_SHARES)
    return int(np.searchsorted(edges, u, side="right")) + 1 if u < edges[-1] else 0


def multisite_sites(seed: int, severity: float = 1.0) -> dict[int, tuple[str, float, dict[str, Any]]]:
    """Site -> (shift type, severity, parameters), fixed by the domain seed: a seeded permutation gives each of the
    four sites its own shift type; severity and parameters are drawn once per site. Site 0 is unshifted."""
    order = make_rng(seed, "multisite", "site-types").permutation(len(MIXED_SUBDOMAINS))
    sites: dict[int, tuple[str, float, dict[str, Any]]] = {0: ("identity", 0.0, {})}
    for site, index in enumerate(order, start=1):
        kind = MIXED_SUBDOMAINS[int(index)]
        rng = make_rng(seed, "multisite", "site", site)
        sev = float(min(1.0, severity * DEFAULT_SEVERITY[kind] * rng.uniform(*MULTISITE_SEVERITY_RANGE)))
        sites[site] = (kind, sev, SAMPLERS[kind](sev, rng))
    return sites


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
