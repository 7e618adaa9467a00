"""Named, seeded intensity/resolution shifts that turn one real dataset into simulated target domains.

Every shift works on the image only (labels are never touched) and preserves its shape exactly. The raw image, on
any intensity scale, is first rescaled robustly to [0, 1] (0.5/99.5 percentiles of the nonzero voxels, then
clipped); the shift is applied in that scale, and the result is returned as float32 in the same "[0, 1]-ish" scale
(noise and bias fields may push values a little outside [0, 1]). All randomness comes from
`make_rng(seed, domain, case_id)`, so a case's shifted image depends only on (image, domain, seed, case_id,
severity) and is bit-identical across calls. Noise and bias fields are numpy/scipy equivalents of MONAI's
RandRicianNoise and RandBiasField (same formulas) so that one Generator drives everything and no torch import is needed.

This module is the registry and the per-image API; `plans` samples what is applied, `appliers` applies it and
`dataset` writes a shifted copy of a dataset with the sampled coefficients in its provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from assft.domains.appliers import APPLIERS, apply_plan, rescale_intensity
from assft.domains.plans import DEFAULT_SEVERITY, SAMPLERS, _mixed_plan, plan_case
from assft.errors import ConfigError, DataError
from assft.registry import Registry

ShiftFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

DOMAINS: Registry[ShiftFn] = Registry("domain")


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
